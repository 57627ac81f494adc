# GUI half of the undo check (tests/gimp/in-chroot.sh gui_undo): shows an
# image, runs plug-in-ldm-inpaint non-interactively, writes "ran", waits for
# the driver to press ctrl+z in the image window, then checks that the image
# is back to its layers and size.
import os, sys, time
import gi
gi.require_version('Gimp', '3.0'); gi.require_version('Gegl', '0.4')
from gi.repository import Gimp, Gegl

D = os.environ['LDM_UNDO_DIR']
print('GIMP %s: undo check' % Gimp.version(), file=sys.stderr, flush=True)
img = Gimp.Image.new(160, 120, Gimp.ImageBaseType.RGB)
bg = Gimp.Layer.new(img, 'bg', 160, 120, Gimp.ImageType.RGB_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
img.insert_layer(bg, None, 0)
Gimp.context_set_foreground(Gegl.Color.new('#3366cc')); bg.fill(Gimp.FillType.FOREGROUND)
Gimp.Display.new(img)
img.select_rectangle(Gimp.ChannelOps.REPLACE, 40, 30, 60, 40)
img.clean_all()
before = [l.get_name() for l in img.get_layers()]
proc = Gimp.get_pdb().lookup_procedure('plug-in-ldm-inpaint')
cfg = proc.create_config()
cfg.set_property('run-mode', Gimp.RunMode.NONINTERACTIVE)
cfg.set_property('image', img)
cfg.set_core_object_array('drawables', [bg])
cfg.set_property('prompt', 'undo me'); cfg.set_property('steps', 2)
cfg.set_property('random-seed', False); cfg.set_property('work-size', 128)
res = proc.run(cfg)
status = res.index(0)
Gimp.displays_flush()
after = [l.get_name() for l in img.get_layers()]
print('UNDO status %s, layers %s -> %s' % (status, before, after), file=sys.stderr, flush=True)
with open(os.path.join(D, 'ran'), 'w') as f:
    f.write('SUCCESS\n' if status == Gimp.PDBStatusType.SUCCESS else 'FAILED\n')
for i in range(80):
    if os.path.exists(os.path.join(D, 'undone')):
        break
    time.sleep(0.25)
time.sleep(0.5)
undone = [l.get_name() for l in img.get_layers()]
ok = status == Gimp.PDBStatusType.SUCCESS and len(after) == len(before) + 1 and undone == before \
    and not img.is_dirty()
print('%s - one undo step removes the new layer  # %s -> %s -> %s (dirty %s)' % (
    'ok' if ok else 'not ok', before, after, undone, img.is_dirty()), file=sys.stderr, flush=True)
