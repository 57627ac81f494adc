# GIMP half of the live painting checks (tests/gimp/in-chroot.sh gui_live):
# runs in a real GIMP window under Xvfb while tests/gimp/live_driver.py
# opens Filters > Generative > Live Painting... from GIMP's menu through the
# accessibility bus, clicks the dialog's buttons and presses keys in the
# image window. This side paints strokes through the PDB (paintbrush along a
# path) and checks the image. Turns are handed over with files in
# $LDM_LIVE_DIR: cmd-N (what the driver should do) -> reply-N.
import hashlib, os, struct, sys, time
import gi
gi.require_version('Gimp', '3.0'); gi.require_version('Gegl', '0.4')
from gi.repository import Gimp, Gegl, Gio

D = os.environ['LDM_LIVE_DIR']
LIVE = 'Live result'
n_cmd = 0
fails = 0


def say(line):
    print(line, file=sys.stderr, flush=True)


def check(name, cond, detail=''):
    global fails
    fails += 0 if cond else 1
    say(('ok - ' if cond else 'not ok - ') + name + ('  # ' + str(detail) if detail else ''))
    return bool(cond)


def ask(cmd, timeout=120):
    """Hands `cmd` to the driver, returns its reply (None on timeout)."""
    global n_cmd
    n_cmd += 1
    path = os.path.join(D, 'cmd-%d' % n_cmd)
    with open(path + '.tmp', 'w') as f:
        f.write(cmd)
    os.rename(path + '.tmp', path)
    reply = os.path.join(D, 'reply-%d' % n_cmd)
    t0 = time.time()
    while time.time() - t0 < timeout:
        if os.path.exists(reply):
            time.sleep(0.05)
            return open(reply).read()
        time.sleep(0.1)
    say('# no reply to %r' % cmd)
    return None


def layer(img, name):
    for l in img.get_layers():
        if l.get_name() == name:
            return l
    return None


def names(img):
    return [l.get_name() for l in img.get_layers()]


def pixels(drawable):
    buf = drawable.get_buffer()
    rect = Gegl.Rectangle.new(0, 0, drawable.get_width(), drawable.get_height())
    return bytes(buf.get(rect, 1.0, "R'G'B'A u8", Gegl.AbyssPolicy.NONE))


def digest(drawable):
    return hashlib.md5(pixels(drawable)).hexdigest()[:12]


def wait_for(pred, timeout=60, step=0.05):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = pred()
        if v:
            return v, time.time() - t0
        time.sleep(step)
    return None, time.time() - t0


def live_digest(img):
    l = layer(img, LIVE)
    if l is None or not l.is_valid():
        return None
    d = pixels(l)
    # no result yet: still transparent
    return hashlib.md5(d).hexdigest()[:12] if any(d[3::4]) else None


def new_image(w=256, h=256, colour='#7f7f7f'):
    img = Gimp.Image.new(w, h, Gimp.ImageBaseType.RGB)
    bg = Gimp.Layer.new(img, 'bg', w, h, Gimp.ImageType.RGB_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
    img.insert_layer(bg, None, 0)
    Gimp.context_set_foreground(Gegl.Color.new(colour))
    bg.fill(Gimp.FillType.FOREGROUND)
    img.undo_disable(); img.undo_enable()    # an empty undo history
    disp = Gimp.Display.new(img)
    Gimp.displays_flush()
    img.clean_all()
    return img, bg, disp


def stroke(bg, colour, points, size=28):
    Gimp.context_set_foreground(Gegl.Color.new(colour))
    Gimp.context_set_brush_size(size)
    return Gimp.paintbrush_default(bg, [float(v) for v in points])


STROKES = [('#e02020', [40, 60, 120, 70, 200, 60]),
           ('#2040e0', [60, 200, 128, 130, 200, 200]),
           ('#f0d020', [128, 40, 128, 220])]

Gimp.context_push()
Gimp.context_set_brush(Gimp.Brush.get_by_name('2. Hardness 100') or Gimp.context_get_brush())
Gimp.context_set_paint_mode(Gimp.LayerMode.NORMAL)
Gimp.context_set_opacity(100.0)

# ---- 1. live mode on a 256x256 image with the demo model ---------------------
img, bg, disp = new_image()
orig = pixels(bg)
reply = ask('open-live')
check('the Live Painting dialog opened from the menu', reply and reply.startswith('ok'), reply)
say('# ' + str(reply).strip())
check('a prompt typed into the dialog', ask('prompt:a red circle on a blue background') == 'ok')
first, t = wait_for(lambda: live_digest(img), 120)
check('a "Live result" layer at the top, filled by the first result',
      first and names(img)[0] == LIVE, '%s after %.1f s, layers %s' % (first, t, names(img)))
check('the live layer and its first result leave the image clean (no undo step, not dirty)',
      not img.is_dirty(), 'dirty %s' % img.is_dirty())
prev = first
snap = [orig]
latencies = []
for k, (colour, pts) in enumerate(STROKES, 1):
    time.sleep(1.0)     # a pause between strokes, as a painter makes
    ok = stroke(bg, colour, pts)
    Gimp.displays_flush()
    t0 = time.time()
    snap.append(pixels(bg))
    new, t = wait_for(lambda: (lambda d: d if d and d != prev else None)(live_digest(img)), 60)
    latencies.append(t)
    check('stroke %d (paintbrush through the PDB): the live layer changed' % k,
          ok and new is not None, 'after %.2f s (%s -> %s)' % (t, prev, new))
    prev = new or prev
    time.sleep(0.6)     # let a job that started mid-stroke settle
    prev = live_digest(img) or prev
    st = ask('state')
    say('# after stroke %d: %s' % (k, (st or '').replace('\n', ' | ')))
    ask('shot:live-stroke-%d' % k)
say('# stroke -> live layer changed, seconds (poll 0.05 s): %s' %
    ' '.join('%.2f' % v for v in latencies))
check('the user strokes dirtied the image', img.is_dirty())

# Apply: exactly one undo step with a layer and its recipe
before = names(img)
ask('click:Apply')
# the layer appears first, its pixels and recipe come within the same undo group
applied, t = wait_for(lambda: next((l for l in img.get_layers() if 'live, seed' in l.get_name()
                                    and l.get_parasite('gimp-ldm-recipe')), None), 30)
p = applied.get_parasite('gimp-ldm-recipe') if applied else None
recipe = bytes(p.get_data()).decode('utf-8', 'replace') if p else ''
check('Apply: a new layer under the live layer', applied is not None and
      names(img) == [LIVE, applied.get_name()] + before[1:], names(img))
check('Apply: the layer carries the recipe (prompt, seed, model, the live composite as source)',
      'procedure=plug-in-ldm-refine' in recipe and 'source=live-composite' in recipe
      and 'seed=' in recipe and 'model-hash=' in recipe, recipe.replace('\n', ' ')[:300])
applied_px = pixels(applied) if applied else b''

# undo, one key at a time: Apply, then the three strokes, then nothing more
ask('keys:ctrl+z'); time.sleep(1.0)
check('one undo removes the applied layer (Apply was one step)',
      names(img) == before, names(img))
for k in (3, 2, 1):
    ask('keys:ctrl+z'); time.sleep(1.0)
    check('the next undo takes back stroke %d (live updates added no step in between)' % k,
          pixels(bg) == snap[k - 1] and layer(img, LIVE) is not None, names(img))
ask('keys:ctrl+z'); time.sleep(1.0)
check('nothing more to undo: the live layer stays, the picture is the original',
      pixels(bg) == orig and names(img) == before, names(img))
check('the image is clean again (the live layer did not dirty it)', not img.is_dirty(),
      'dirty %s' % img.is_dirty())
for _ in range(4):
    ask('keys:ctrl+y'); time.sleep(0.7)
applied = next((l for l in img.get_layers() if 'live, seed' in l.get_name()), None)
check('redo brings back the strokes and the applied layer',
      pixels(bg) == snap[3] and applied is not None and pixels(applied) == applied_px, names(img))

# Close: the live layer goes, the rest stays as the user's edits left it
after_edits = [n for n in names(img) if n != LIVE]
reply = ask('click:Close')
gone = ask('wait-gone')
check('Close ends live mode (the dialog goes, the plug-in returns)', gone and gone.startswith('ok'), gone)
check('Close removes the live layer and leaves the other layers as they were',
      names(img) == after_edits, '%s -> %s' % (after_edits, names(img)))
for k in range(4):
    ask('keys:ctrl+z'); time.sleep(0.7)
check('after Close the undo history is the user\'s: 4 undos (Apply + 3 strokes) give the original',
      pixels(bg) == orig and names(img) == ['bg'], names(img))
ask('keys:ctrl+z'); time.sleep(0.7)
check('... and there is nothing more to undo', pixels(bg) == orig and names(img) == ['bg'], names(img))
disp.delete()

# ---- 2. the live layer deleted by the user mid-run ----------------------------
img, bg, disp = new_image(colour='#406080')
reply = ask('open-live')
first, t = wait_for(lambda: live_digest(img), 120)
check('live mode again on a second image', first is not None, reply)
stroke(bg, '#e02020', [20, 20, 230, 230])
time.sleep(0.3)
img.remove_layer(layer(img, LIVE))
Gimp.displays_flush()
st, t = wait_for(lambda: (lambda s: s if s and 'deleted' in s else None)(ask('state')), 20, 0.2)
check('deleting the live layer ends live mode with a message', st, (st or '').replace('\n', ' | '))
ask('shot:live-layer-deleted')
gone = ask('click:Close') and ask('wait-gone')
check('... and Close then ends the plug-in cleanly', gone and gone.startswith('ok'), gone)
check('the image keeps the user\'s layers', names(img) == ['bg'], names(img))

# ---- 3. the image closed mid-run ---------------------------------------------
img, bg, disp = new_image(colour='#804060')
reply = ask('open-live')
first, t = wait_for(lambda: live_digest(img), 120)
check('live mode on a third image', first is not None, reply)
stroke(bg, '#20e020', [20, 230, 230, 20])
time.sleep(0.3)
disp.delete()       # the last display: the image goes
st, t = wait_for(lambda: (lambda s: s if s and 'closed' in s else None)(ask('state')), 20, 0.2)
check('closing the image ends live mode with a message', st, (st or '').replace('\n', ' | '))
gone = ask('click:Close') and ask('wait-gone')
check('... and Close then ends the plug-in cleanly', gone and gone.startswith('ok'), gone)

# the plug-in refuses to run without its dialog
img2 = Gimp.Image.new(64, 64, Gimp.ImageBaseType.RGB)
proc = Gimp.get_pdb().lookup_procedure('plug-in-ldm-live')
cfg = proc.create_config()
cfg.set_property('run-mode', Gimp.RunMode.NONINTERACTIVE)
cfg.set_property('image', img2)
res = proc.run(cfg)
check('non-interactive call: refused as interactive only',
      res.index(0) == Gimp.PDBStatusType.CALLING_ERROR, res.index(0))
img2.delete()
ask('quit', 10)
say('SUMMARY live: %d failed' % fails)
open(os.path.join(D, 'checks-done'), 'w').write('%d\n' % fails)
