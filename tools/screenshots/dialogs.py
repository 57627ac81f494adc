# GUI half of tools/screenshots/dialogs.sh: opens an image in a real GIMP 3
# window and calls each gimp-ldm procedure in INTERACTIVE mode, one after the
# other; the shell side photographs each dialog and closes it with Escape.
import os, sys
import gi
gi.require_version('Gimp', '3.0'); gi.require_version('Gegl', '0.4')
from gi.repository import Gimp, Gegl

W, H = 512, 384
img = Gimp.Image.new(W, H, Gimp.ImageBaseType.RGB)
bg = Gimp.Layer.new(img, 'Background', W, H, Gimp.ImageType.RGB_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
img.insert_layer(bg, None, 0)
Gimp.context_set_foreground(Gegl.Color.new('#6a8fb5'))
Gimp.context_set_background(Gegl.Color.new('#e9d8a6'))
bg.edit_gradient_fill(Gimp.GradientType.LINEAR, 0.0, False, 1, 0.0, True, 0, 0, 0, H)
Gimp.Display.new(img)
img.select_ellipse(Gimp.ChannelOps.REPLACE, 180, 140, 160, 120)
pdb = Gimp.get_pdb()


def run(name, mode, drawable, **args):
    proc = pdb.lookup_procedure(name)
    cfg = proc.create_config()
    cfg.set_property('run-mode', mode)
    cfg.set_property('image', img)
    cfg.set_core_object_array('drawables', [drawable])
    for k, v in args.items():
        cfg.set_property(k, v)
    res = proc.run(cfg)
    print('SHOT %s -> %s' % (name, res.index(0)), file=sys.stderr, flush=True)
    return res


prompts = {
    'plug-in-ldm-inpaint': 'a red hot-air balloon, evening light',
    'plug-in-ldm-generate': 'a lighthouse on a cliff, watercolor',
    'plug-in-ldm-refine': 'oil painting, thick brush strokes',
    'plug-in-ldm-upscale': 'sharp, detailed',
    'plug-in-ldm-outpaint': 'wide sky over the sea',
}
for name, prompt in prompts.items():
    # set the values the dialog opens with (non-interactive settings are not
    # remembered, so use WITH_LAST_VALS-free defaults plus a prompt)
    run(name, Gimp.RunMode.INTERACTIVE, bg, prompt=prompt,
        **{'negative-prompt': 'blurry, low quality'})

# regenerate needs a layer with a recipe: make one (small and quick)
res = run('plug-in-ldm-inpaint', Gimp.RunMode.NONINTERACTIVE, bg,
          prompt='a red hot-air balloon', steps=4, **{'work-size': 128})
if res.index(0) == Gimp.PDBStatusType.SUCCESS:
    run('plug-in-ldm-regenerate', Gimp.RunMode.INTERACTIVE, res.index(1))

# Generate with the Control section open: a pencil sketch (black on white) on
# its own layer (a house and a sun) as the control layer, the scribble
# preprocessor, the ControlNet named by LDM_SHOT_CONTROLNET; the section
# open as if it had been left open on this image (GIMP's last values of the
# procedure on the image, read over the arguments in interactive mode: only
# that one)
sketch = Gimp.Layer.new(img, 'Sketch', W, H, Gimp.ImageType.RGB_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
img.insert_layer(sketch, None, 0)
Gimp.Selection.none(img)
Gimp.context_set_foreground(Gegl.Color.new('#ffffff'))
sketch.fill(Gimp.FillType.FOREGROUND)
Gimp.context_set_foreground(Gegl.Color.new('#000000'))
Gimp.context_set_brush_size(6.0)
for stroke in ([140, 330, 140, 200, 250, 120, 360, 200, 360, 330, 140, 330],
               [220, 330, 220, 260, 280, 260, 280, 330],
               [400, 70, 430, 60, 450, 80, 440, 110, 410, 115, 395, 95, 400, 70]):
    Gimp.pencil(sketch, stroke)
Gimp.displays_flush()
cn = os.environ.get('LDM_SHOT_CONTROLNET')
if cn:
    from gi.repository import Gio
    img.attach_parasite(Gimp.Parasite.new('GimpProcedureConfigRun-plug-in-ldm-generate-last',
                                          0, b'(show-control yes)\n'))
    run('plug-in-ldm-generate', Gimp.RunMode.INTERACTIVE, bg,
        prompt='a house with a red roof under the sun, watercolor',
        **{'negative-prompt': 'blurry, low quality', 'control-layer': sketch, 'controlnet': Gio.File.new_for_path(cn),
           'control-preprocess': 'scribble'})
print('SHOT done', file=sys.stderr, flush=True)
