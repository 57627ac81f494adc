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
mark('checks-done')
