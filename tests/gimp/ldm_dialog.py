# GIMP half of the interactive dialog checks (tests/gimp/in-chroot.sh
# gui_dialog): runs in a real GIMP window under Xvfb while
# tests/gimp/dialog_driver.py works the plug-in's dialog through the
# accessibility bus and real mouse clicks. Files in $LDM_DIALOG_DIR hand the
# turns over: "image-ready" -> the driver expects no dialog (no selection),
# "dialog-N" -> a dialog is up for the driver.
import os, sys, time
import gi
gi.require_version('Gimp', '3.0'); gi.require_version('Gegl', '0.4')
from gi.repository import Gimp, Gegl, Gio

D = os.environ['LDM_DIALOG_DIR']
pdb = Gimp.get_pdb()


def say(line):
    print(line, file=sys.stderr, flush=True)


def check(name, cond, detail=''):
    say(('ok - ' if cond else 'not ok - ') + name + ('  # ' + str(detail) if detail else ''))
    return bool(cond)


def mark(name):
    open(os.path.join(D, name), 'w').close()


def run(name, mode, img, drawable, **args):
    proc = pdb.lookup_procedure(name)
    cfg = proc.create_config()
    cfg.set_property('run-mode', mode)
    cfg.set_property('image', img)
    cfg.set_core_object_array('drawables', [drawable])
    for k, v in args.items():
        cfg.set_property(k, v)
    res = proc.run(cfg)
    return res.index(0), (res.index(1) if res.length() > 1 else None)


def interactive(name, img, drawable):
    return run(name, Gimp.RunMode.INTERACTIVE, img, drawable)


img = Gimp.Image.new(256, 256, Gimp.ImageBaseType.RGB)
bg = Gimp.Layer.new(img, 'bg', 256, 256, Gimp.ImageType.RGB_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
img.insert_layer(bg, None, 0)
Gimp.context_set_foreground(Gegl.Color.new('#808080'))
bg.fill(Gimp.FillType.FOREGROUND)
Gimp.Display.new(img)
Gimp.displays_flush()
img.clean_all()

# 1. no selection: the error comes before any dialog opens
Gimp.Selection.none(img)
t0 = time.time()
status, msg = interactive('plug-in-ldm-inpaint', img, bg)
check('inpaint without a selection fails before the dialog opens',
      status == Gimp.PDBStatusType.EXECUTION_ERROR and 'selection' in str(msg).lower()
      and not os.path.exists(os.path.join(D, 'saw-dialog-0')),
      '%s %r after %.1f s' % (status, msg, time.time() - t0))

# 2. the dialog: the driver sets values, runs, cancels mid-run, then closes it
img.select_rectangle(Gimp.ChannelOps.REPLACE, 64, 64, 128, 128)
img.clean_all()
layers0 = [l.get_name() for l in img.get_layers()]
mark('dialog-1')
status, _ = interactive('plug-in-ldm-inpaint', img, bg)
layers1 = [l.get_name() for l in img.get_layers()]
check('dialog Cancel mid-run, then Cancel: the procedure is cancelled',
      status == Gimp.PDBStatusType.CANCEL, status)
check('dialog Cancel mid-run: no layer added, image clean',
      layers1 == layers0 and not img.is_dirty(), '%s -> %s dirty %s' % (layers0, layers1, img.is_dirty()))

# 3. the same dialog again, run to the end: one layer more
mark('dialog-2')
status, layer = interactive('plug-in-ldm-inpaint', img, bg)
check('dialog OK after a cancelled run: succeeds with a new layer',
      status == Gimp.PDBStatusType.SUCCESS and len(img.get_layers()) == len(layers0) + 1,
      '%s %s' % (status, [l.get_name() for l in img.get_layers()]))
mark('done')

# 4. untouched defaults with the demo models (script mode, only prompt and
#    seed given): the model's own native size and settings draw the asked
#    colour in the asked place
def region_mean(layer, x0, y0, x1, y1):
    buf = layer.get_buffer()
    rect = Gegl.Rectangle.new(x0, y0, x1 - x0, y1 - y0)
    data = bytes(buf.get(rect, 1.0, "R'G'B'A float", Gegl.AbyssPolicy.NONE))
    import struct
    f = struct.unpack('%df' % (len(data) // 4), data)
    n = len(f) // 4
    return [sum(f[i * 4 + c] for i in range(n)) / n for c in range(3)]


def script(name, img, drawable, **args):
    return run(name, Gimp.RunMode.NONINTERACTIVE, img, drawable, **args)


img2 = Gimp.Image.new(512, 512, Gimp.ImageBaseType.RGB)
bg2 = Gimp.Layer.new(img2, 'bg', 512, 512, Gimp.ImageType.RGB_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
img2.insert_layer(bg2, None, 0)
Gimp.context_set_foreground(Gegl.Color.new('#808080'))
bg2.fill(Gimp.FillType.FOREGROUND)
status, layer = script('plug-in-ldm-generate', img2, bg2,
                       prompt='a big red square on a blue background, top left',
                       **{'random-seed': False, 'seed': 3})
if check('generate 512x512 with the defaults succeeds', status == Gimp.PDBStatusType.SUCCESS, status):
    tl = region_mean(layer, 40, 40, 200, 200)
    br = region_mean(layer, 330, 330, 480, 480)
    check('generate with the defaults: red at the top left, blue at the bottom right',
          tl[0] > tl[2] + 0.2 and tl[0] > tl[1] + 0.2 and br[2] > br[0] + 0.2,
          'top left %s, bottom right %s' % (tl, br))
    print('# generate defaults: top left %s, bottom right %s' % (tl, br), file=sys.stderr)
# inpaint a box of that picture, as the demo's semantic check does: the box
# becomes mostly green (nearest of the nine colours the model knows)
NAMED = {'red': (1, 0, 0), 'green': (0, .6, 0), 'blue': (0, 0, 1), 'yellow': (1, 1, 0),
         'white': (1, 1, 1), 'black': (0, 0, 0), 'orange': (1, .55, 0),
         'purple': (.5, 0, .5), 'gray': (.5, .5, .5)}


def green_share(layer, x0, y0, x1, y1):
    import struct
    buf = layer.get_buffer()
    data = bytes(buf.get(Gegl.Rectangle.new(x0, y0, x1 - x0, y1 - y0), 1.0,
                         "R'G'B'A float", Gegl.AbyssPolicy.NONE))
    f = struct.unpack('%df' % (len(data) // 4), data)
    n = len(f) // 4
    near = [min(NAMED, key=lambda k: sum((f[i * 4 + c] - NAMED[k][c]) ** 2 for c in range(3)))
            for i in range(n)]
    return near.count('green') / n


if status == Gimp.PDBStatusType.SUCCESS:
    src = layer
    img2.select_rectangle(Gimp.ChannelOps.REPLACE, 256, 256, 192, 192)
    status, layer = script('plug-in-ldm-inpaint', img2, src, prompt='a big green square',
                           **{'random-seed': False, 'seed': 7})
    if check('inpaint a selection with the defaults succeeds', status == Gimp.PDBStatusType.SUCCESS,
             status):
        x, y = layer.get_offsets()[-2:]
        # the middle half of the selection (the shape fills the box, not to its edges)
        share = green_share(layer, 304 - x, 304 - y, 400 - x, 400 - y)
        check('inpaint with the defaults: the middle of the selection is mostly green '
              '(%.2f of its pixels)' % share, share >= 0.5)
        out = Gio.File.new_for_path(os.path.join(D, 'defaults-inpaint.png'))
        Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, img2, out, None)
img2.delete()

# 5. every other dialog: the driver measures it and closes it with Cancel
img3 = Gimp.Image.new(256, 256, Gimp.ImageBaseType.RGB)
bg3 = Gimp.Layer.new(img3, 'bg', 256, 256, Gimp.ImageType.RGB_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
img3.insert_layer(bg3, None, 0)
Gimp.Display.new(img3)
mark('sizes')
for name in ('plug-in-ldm-generate', 'plug-in-ldm-refine', 'plug-in-ldm-upscale',
             'plug-in-ldm-outpaint'):
    status, _ = interactive(name, img3, bg3)
    check('%s dialog closed by Cancel' % name, status == Gimp.PDBStatusType.CANCEL, status)
    if name == 'plug-in-ldm-generate':    # after the damaged model's failed run
        check('generate with a damaged model, then Cancel: no layer added',
              [l.get_name() for l in img3.get_layers()] == ['bg'],
              [l.get_name() for l in img3.get_layers()])

# 6. the Control section: on an image whose second layer holds a white
#    scribble on black, the driver opens Control, picks that layer, a
#    ControlNet and the scribble preprocessor, checks the control image and
#    the height, and runs: a new layer whose recipe names the ControlNet
#    and the control layer; the control layer's pixels untouched
img4 = Gimp.Image.new(256, 256, Gimp.ImageBaseType.RGB)
bg4 = Gimp.Layer.new(img4, 'bg', 256, 256, Gimp.ImageType.RGB_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
img4.insert_layer(bg4, None, 0)
Gimp.context_set_foreground(Gegl.Color.new('#808080'))
bg4.fill(Gimp.FillType.FOREGROUND)
# faint stripes on the background (20 grey levels: Sobel magnitude 80), for
# the Canny thresholds' check in the preview
for x in range(8, 256, 16):
    img4.select_rectangle(Gimp.ChannelOps.ADD if x > 8 else Gimp.ChannelOps.REPLACE, x, 0, 8, 256)
Gimp.context_set_foreground(Gegl.Color.new('#949494'))
bg4.edit_fill(Gimp.FillType.FOREGROUND)
Gimp.Selection.none(img4)
scribble = Gimp.Layer.new(img4, 'Scribble', 256, 256, Gimp.ImageType.RGB_IMAGE, 100.0,
                          Gimp.LayerMode.NORMAL)
img4.insert_layer(scribble, None, 0)
Gimp.context_set_foreground(Gegl.Color.new('#000000'))
scribble.fill(Gimp.FillType.FOREGROUND)
# white strokes (filled selections: this GIMP runs without brushes): a house
for x, y, w, h in ((60, 120, 6, 90), (190, 120, 6, 90), (60, 204, 136, 6), (100, 150, 40, 6),
                   (100, 150, 6, 60)):
    img4.select_rectangle(Gimp.ChannelOps.REPLACE, x, y, w, h)
    scribble.edit_fill(Gimp.FillType.WHITE)
img4.select_ellipse(Gimp.ChannelOps.REPLACE, 150, 30, 60, 60)
img4.select_ellipse(Gimp.ChannelOps.SUBTRACT, 156, 36, 48, 48)
scribble.edit_fill(Gimp.FillType.WHITE)
Gimp.Selection.none(img4)
img4.set_selected_layers([bg4])
Gimp.Display.new(img4)
Gimp.displays_flush()


def layer_bytes(layer):
    buf = layer.get_buffer()
    return bytes(buf.get(Gegl.Rectangle.new(0, 0, layer.get_width(), layer.get_height()), 1.0,
                         "R'G'B'A float", Gegl.AbyssPolicy.NONE))


def recipe_of(layer):
    par = layer.get_parasite('gimp-ldm-recipe')
    if par is None:
        return {}
    return dict(l.split('=', 1) for l in
                bytes(par.get_data()).decode('utf-8', 'replace').split('\n') if '=' in l)


scribble0 = layer_bytes(scribble)
n0 = len(img4.get_layers())
mark('control-1')
status, layer = interactive('plug-in-ldm-generate', img4, bg4)
if check('generate with the Control section set in the dialog: succeeds with a new layer',
         status == Gimp.PDBStatusType.SUCCESS and layer is not None
         and len(img4.get_layers()) == n0 + 1,
         '%s %s' % (status, [l.get_name() for l in img4.get_layers()])):
    r = recipe_of(layer)
    picked = open(os.path.join(D, 'control-picked')).read().strip() \
        if os.path.exists(os.path.join(D, 'control-picked')) else '?'
    check('generate with control: the recipe names the ControlNet picked (%s) and the '
          'control layer (tattoo %d), preprocessor scribble' % (picked, scribble.get_tattoo()),
          # the file, or for a diffusers folder's weights the folder, the
          # dialog names it after
          any(os.path.basename(p).startswith(picked) for p in
              (r.get('controlnet', ''), os.path.dirname(r.get('controlnet', ''))))
          and r.get('control-layer') == str(scribble.get_tattoo())
          and r.get('control-preprocess') == 'scribble',
          {k: v for k, v in r.items() if k.startswith('control')})
check('generate with control: the control layer is untouched',
      layer_bytes(scribble) == scribble0 and scribble.get_name() == 'Scribble')

# 7. the three dialogs with a Control section again: Generate opens with
#    it open (remembered from the run above); the driver measures each
#    with the section open and closed and closes it with Cancel
img4.select_rectangle(Gimp.ChannelOps.REPLACE, 64, 64, 128, 128)
mark('control-2')
for name in ('plug-in-ldm-generate', 'plug-in-ldm-refine', 'plug-in-ldm-inpaint'):
    status, _ = interactive(name, img4, bg4)
    check('%s dialog (Control) closed by Cancel' % name, status == Gimp.PDBStatusType.CANCEL, status)
mark('checks-done')
