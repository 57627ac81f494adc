# GIMP half of the access-key check (tests/gimp/in-chroot.sh gui_keys), run
# once per language: each of the plug-in's dialogs is opened as a user opens
# it (interactive run mode, a real window under Xvfb) with
# LDM_DIALOG_ACCESS_KEYS set; the dialog itself opens its sections one after
# the other, appends the access key of everything then on screen (section,
# key, label) to that file and cancels (ui/ldm-dialog.c). Checks, per dialog
# and section (none open, Advanced open, Control open):
#  - no key of a setting inside a closed section is live (GTK counts a
#    target while it is mapped; a closed section's child used to stay so);
#  - every key on screen is used once. Two things sharing Alt+key is a
#    clash: the key then only moves the focus between them. GIMP's own
#    buttons count (Help, Reset, Cancel, OK, Load Saved Settings, Save
#    Settings, in GIMP's translation), and a translation can clash where the
#    English does not; a label none of whose letters is free has no key.
import collections, os, sys
import gi
gi.require_version('Gimp', '3.0'); gi.require_version('Gegl', '0.4')
from gi.repository import Gimp, Gegl

KEYS = os.environ['LDM_DIALOG_ACCESS_KEYS']
LANG = os.environ.get('LANG', '?')
pdb = Gimp.get_pdb()
fails = 0


def check(name, cond, detail=''):
    global fails
    fails += 0 if cond else 1
    print(('ok - ' if cond else 'not ok - ') + name + ('  # ' + str(detail) if detail else ''),
          file=sys.stderr, flush=True)


img = Gimp.Image.new(256, 256, Gimp.ImageBaseType.RGB)
bg = Gimp.Layer.new(img, 'bg', 256, 256, Gimp.ImageType.RGB_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
img.insert_layer(bg, None, 0)
Gimp.context_set_foreground(Gegl.Color.new('#808080'))
bg.fill(Gimp.FillType.FOREGROUND)
img.select_rectangle(Gimp.ChannelOps.REPLACE, 64, 64, 128, 128)  # Inpaint needs a selection
Gimp.Display.new(img)
Gimp.displays_flush()

# the sections each dialog has
DIALOGS = {'plug-in-ldm-generate': ('none', 'advanced', 'control'),
           'plug-in-ldm-refine': ('none', 'advanced', 'control'),
           'plug-in-ldm-inpaint': ('none', 'advanced', 'control'),
           'plug-in-ldm-upscale': ('none', 'advanced'),
           'plug-in-ldm-outpaint': ('none', 'advanced')}
for name, want in DIALOGS.items():
    open(KEYS, 'w').close()
    proc = pdb.lookup_procedure(name)
    cfg = proc.create_config()
    cfg.set_property('run-mode', Gimp.RunMode.INTERACTIVE)
    cfg.set_property('image', img)
    cfg.set_core_object_array('drawables', [bg])
    status = proc.run(cfg).index(0)
    with open(KEYS, encoding='utf-8') as f, open(KEYS + '.all', 'a', encoding='utf-8') as keep:
        keep.write(f.read())
    sections = collections.OrderedDict()
    with open(KEYS, encoding='utf-8') as f:
        for line in f.read().splitlines()[1:]:
            if line.startswith('#'):
                continue
            sec, key, text = line.split(' ', 2)
            sections.setdefault(sec, collections.defaultdict(list))[key].append(text)
    check('%s (%s): the dialog reported its access keys with %s and was cancelled'
          % (name, LANG, ', '.join(want)),
          status == Gimp.PDBStatusType.CANCEL and tuple(sections) == want,
          '%s, sections %s' % (status, list(sections)))
    for sec, keys in sections.items():
        hidden = [t for v in keys.values() for t in v if t.endswith('  HIDDEN')]
        check('%s (%s), %s open: no live access key of a setting in a closed section'
              % (name, LANG, sec), not hidden, hidden)
        clash = {k: v for k, v in keys.items() if len(v) > 1}
        check('%s (%s), %s open: no access key shared by two things on screen (%d keys)'
              % (name, LANG, sec, len(keys)), not clash, clash)
print('SUMMARY keys %s: %d failed' % (LANG, fails), file=sys.stderr, flush=True)
