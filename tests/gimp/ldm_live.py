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


def ask_async(cmd):
    """Hands `cmd` to the driver; returns a function that waits for the
    reply (for commands that watch while this side paints)."""
    global n_cmd
    n_cmd += 1
    k = n_cmd
    path = os.path.join(D, 'cmd-%d' % k)
    with open(path + '.tmp', 'w') as f:
        f.write(cmd)
    os.rename(path + '.tmp', path)

    def wait(timeout=60):
        reply = os.path.join(D, 'reply-%d' % k)
        t0 = time.time()
        while time.time() - t0 < timeout:
            if os.path.exists(reply):
                time.sleep(0.05)
                return open(reply).read()
            time.sleep(0.1)
        return None
    return wait


def ask(cmd, timeout=120):
    """Hands `cmd` to the driver, returns its reply (None on timeout)."""
    reply = ask_async(cmd)(timeout)
    if reply is None:
        say('# no reply to %r' % cmd)
    return reply


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


RENAMES = 6


def new_image(w=256, h=256, colour='#7f7f7f', renames=0):
    """A fresh image, clean; with `renames`, its history holds that many
    renames of a path, made before it was saved (marked clean): one dirty
    count each, so they measure the dirty count after the user's own steps
    are undone (see extra_dirty)."""
    img = Gimp.Image.new(w, h, Gimp.ImageBaseType.RGB)
    bg = Gimp.Layer.new(img, 'bg', w, h, Gimp.ImageType.RGB_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
    img.insert_layer(bg, None, 0)
    Gimp.context_set_foreground(Gegl.Color.new(colour))
    bg.fill(Gimp.FillType.FOREGROUND)
    if renames:
        path = Gimp.Path.new(img, 'p0')
        img.insert_path(path, None, 0)
    img.undo_disable(); img.undo_enable()    # an empty undo history
    for i in range(renames):
        path.set_name('p%d' % (i + 1))
    disp = Gimp.Display.new(img)
    Gimp.displays_flush()
    img.clean_all()
    return img, bg, disp


def extra_dirty(img, limit=RENAMES):
    """With the user's own steps undone, the image should be clean (dirty
    count 0). Each further undo takes back one rename made before the save,
    one count less: the number of undos until GIMP reports the image clean
    is how far the count was above 0 (None: more than `limit`). The renames
    are redone afterwards."""
    n = 0
    while img.is_dirty() and n < limit:
        ask('keys:ctrl+z'); time.sleep(0.5)
        n += 1
    extra = None if img.is_dirty() else n
    for _ in range(n):
        ask('keys:ctrl+y'); time.sleep(0.3)
    return extra


def stroke(bg, colour, points, size=60):
    Gimp.context_set_foreground(Gegl.Color.new(colour))
    Gimp.context_set_brush_size(size)
    return Gimp.paintbrush_default(bg, [float(v) for v in points])


STROKES = [('#e02020', [40, 60, 120, 70, 200, 60]),
           ('#2040e0', [60, 200, 128, 130, 200, 200]),
           ('#f0d020', [128, 40, 128, 220])]

Gimp.context_push()
Gimp.context_set_brush(Gimp.Brush.get_by_name('2. Hardness 100') or Gimp.context_get_brush())
Gimp.context_set_paint_mode(Gimp.LayerMode.NORMAL)
Gimp.context_enable_dynamics(False)      # strokes of the brush size, no pressure curve
Gimp.context_set_opacity(100.0)

# ---- 1. live mode on a 256x256 image with the demo model ---------------------
# (clean when live mode starts)
img, bg, disp = new_image(renames=RENAMES)
orig = pixels(bg)
reply = ask('open-live')
check('the Live Painting dialog opened from the menu', reply and reply.startswith('ok'), reply)
say('# ' + str(reply).strip())
check('a prompt typed into the dialog', ask('prompt:a big circle') == 'ok')
first, t = wait_for(lambda: live_digest(img), 120)
check('a "Live result" layer at the top, filled by the first result',
      first and names(img)[0] == LIVE, '%s after %.1f s, layers %s' % (first, t, names(img)))
check('the live layer and its first result leave the image clean (no undo step, not dirty)',
      not img.is_dirty(), 'dirty %s' % img.is_dirty())
# 2 steps (the dialog starts with the last run's values) and less strength,
# so that the result follows the strokes more than the prompt
ask('spin:4=2')
ask('spin:1=0.35')     # (a change also when the last run left 0.3)
time.sleep(1.0)
prev = live_digest(img) or first
reply = ask('spin:1=0.3')
new, t = wait_for(lambda: (lambda d: d if d and d != prev else None)(live_digest(img)), 60)
check('a setting changed in the dialog (strength 0.3) starts a new job: the live layer changed',
      reply and reply.startswith('ok') and new is not None, '%s, after %.2f s' % (reply, t))
time.sleep(0.6)
prev = live_digest(img) or prev
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
# the prompt changed while live mode runs: a new job with the new prompt
st = ask('prompt:a big yellow star on a purple background')
new, t = wait_for(lambda: (lambda d: d if d and d != prev else None)(live_digest(img)), 60)
check('the prompt changed in the dialog: a new job redraws the live layer',
      st == 'ok' and new is not None, 'after %.2f s (%s -> %s)' % (t, prev, new))
time.sleep(0.6)
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
check('the image is clean again (the live layer did not dirty it)', not img.is_dirty(),
      'dirty %s' % img.is_dirty())
ask('keys:ctrl+z'); time.sleep(1.0)
check('the next undo takes back the last step made before live mode (a path rename): '
      'the live layer stays, the picture is the original',
      pixels(bg) == orig and names(img) == before
      and img.get_paths()[0].get_name() == 'p%d' % (RENAMES - 1),
      '%s, path %s' % (names(img), img.get_paths()[0].get_name()))
for _ in range(5):
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
# GIMP counts the live layer's removal (a group and the removal: 2) in the
# dirty count although undo is frozen, and no PDB call lowers the count; a
# plug-in can only set it to 0, which it does when the image is unchanged
# since its last save (see 1c). Here the user's edits were there at Close.
extra = extra_dirty(img)
say('# dirty count, image saved when live mode started, edited at Close: after Close and the '
    'user\'s 4 steps undone %s above the saved state (GIMP counts 2 for the removal)' %
    ('more than %d' % RENAMES if extra is None else extra))
check('... and the dirty count is at most 2 above the saved state (the live layer\'s removal)',
      extra is not None and extra <= 2, 'dirty count %s above 0' % extra)
check('... and the undo history before live mode is intact',
      pixels(bg) == orig and names(img) == ['bg']
      and img.get_paths()[0].get_name() == 'p%d' % RENAMES, names(img))
disp.delete()

# ---- 1b. live mode on an image with unsaved changes ---------------------------
img, bg, disp = new_image(colour='#608040', renames=RENAMES)
orig = pixels(bg)
stroke(bg, '#202020', [30, 128, 226, 128])       # an unsaved change
Gimp.displays_flush()
before_live = pixels(bg)
reply = ask('open-live')
first, t = wait_for(lambda: live_digest(img), 120)
check('live mode on an image with unsaved changes', first is not None, reply)
check('the image with unsaved changes is still marked as changed in live mode', img.is_dirty())
# 4 steps, and the state line watched while two strokes are redrawn
reply = ask('spin:4=4')
check('steps set to 4 in the dialog', reply and reply.startswith('ok'), reply)
time.sleep(1.0)
prev = live_digest(img) or first
states = ask_async('states:4')
for k, (colour, pts) in enumerate(STROKES[:2], 1):
    stroke(bg, colour, pts)
    Gimp.displays_flush()
    new, t = wait_for(lambda: (lambda d: d if d and d != prev else None)(live_digest(img)), 60)
    check('unsaved image, stroke %d: the live layer changed' % k, new is not None,
          'after %.2f s' % t)
    prev = new or prev
    time.sleep(1.2)
seen = states() or ''
say('# state line while two strokes were redrawn: %s' % seen)
# (the demo model's jobs take some 40 ms, shorter than the dialog's 50 ms
# poll: "Running: step k of n" shows only now and then; "preparing" always)
check('the state line shows the running job (Running: ...) and then waits again',
      'Running: ' in seen and seen.rstrip().endswith('Waiting for a change'), seen)
lat = (ask('state') or '').split('\n')[-1]
check('the latency line gives the seconds from the change to the result',
      lat.startswith('Last result: ') and ' s after the change (job ' in lat, lat)
# a third stroke, and Close right after it (its job pending or running)
stroke(bg, STROKES[2][0], STROKES[2][1])
Gimp.displays_flush()
ask('click:Close')
gone = ask('wait-gone')
check('unsaved image: Close right after a stroke ends live mode',
      gone and gone.startswith('ok'), gone)
check('unsaved image: Close removed the live layer', names(img) == ['bg'], names(img))
check('unsaved image: the image is still marked as changed after Close', img.is_dirty())
for _ in range(3):
    ask('keys:ctrl+z'); time.sleep(0.7)
check('unsaved image: 3 undos take back the 3 strokes made in live mode',
      pixels(bg) == before_live and names(img) == ['bg'], names(img))
ask('keys:ctrl+z'); time.sleep(0.7)
check('unsaved image: the fourth undo takes back the change made before live mode',
      pixels(bg) == orig, names(img))
# the insert (1) and the removal (2) made while the image had unsaved
# changes: counted by GIMP, not to be taken back by a plug-in
extra = extra_dirty(img)
say('# dirty count, image with unsaved changes when live mode started: after Close '
    'and all the user\'s steps undone %s above the saved state (GIMP counts 1 for '
    'the insert, 2 for the removal)' % ('more than %d' % RENAMES if extra is None else extra))
check('unsaved image: the dirty count is at most 3 above the saved state (the live '
      'layer\'s insert and removal)', extra is not None and extra <= 3,
      'dirty count %s above 0' % extra)
disp.delete()

# ---- 1c. live mode on a saved image, the edits undone before Close ------------
img, bg, disp = new_image(colour='#405060', renames=RENAMES)
orig = pixels(bg)
reply = ask('open-live')
first, t = wait_for(lambda: live_digest(img), 120)
check('live mode on a saved image', first is not None, reply)
stroke(bg, '#e0e0e0', [40, 40, 200, 200])
Gimp.displays_flush()
new, t = wait_for(lambda: (lambda d: d if d and d != first else None)(live_digest(img)), 60)
dirty_painted = img.is_dirty()
ask('keys:ctrl+z'); time.sleep(0.7)
check('saved image: a stroke made it changed, its undo unchanged again (live mode running)',
      dirty_painted and not img.is_dirty() and pixels(bg) == orig,
      'dirty %s -> %s' % (dirty_painted, img.is_dirty()))
ask('click:Close')
gone = ask('wait-gone')
check('saved image: Close ends live mode and removes the live layer',
      gone and gone.startswith('ok') and names(img) == ['bg'], '%s %s' % (gone, names(img)))
extra = extra_dirty(img)
say('# dirty count, image saved when live mode started and unchanged at Close: '
    '%s above the saved state after Close (expected 0)' %
    ('more than %d' % RENAMES if extra is None else extra))
check('saved image, unchanged at Close: still saved after Close (dirty count 0)',
      extra == 0, 'dirty count %s above 0' % extra)
disp.delete()

# ---- 1d. Close at once, before the first result ------------------------------
# (the model still loading or the first job running)
img, bg, disp = new_image(colour='#506070')
reply = ask('open-live')
check('live mode opened for Close at once', reply and reply.startswith('ok'), reply)
reply = ask('click:Close')
gone = ask('wait-gone')
check('Close right after opening ends live mode (the dialog goes, the plug-in returns)',
      reply == 'ok' and gone and gone.startswith('ok'), '%s, %s' % (reply, gone))
time.sleep(1.0)
check('... and leaves the image as it was (no live layer, not changed)',
      names(img) == ['bg'] and not img.is_dirty(), '%s, dirty %s' % (names(img), img.is_dirty()))
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
