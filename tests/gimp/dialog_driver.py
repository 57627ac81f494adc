# Driver half of the interactive dialog checks (see ldm_dialog.py): finds the
# plug-in's dialog on the accessibility bus (AT-SPI), types and sets values
# there, presses OK and Cancel with real mouse clicks (xdotool at the
# buttons' screen positions), photographs the live preview, and checks:
#  - the dialog's content is at most 700 px tall;
#  - Cancel clicked mid-run stops the run within a step or two, adds
#    nothing, and leaves the dialog usable (OK sensitive again);
#  - the preview at about half the steps is a picture, not noise: the ratio
#    of its Laplacian energy to its variance is far below white noise's.
# Prints "ok - ..." / "not ok - ..." lines; exit status 1 on a failure.
import os, random, subprocess, sys, time
import pyatspi
import gi
gi.require_version('GdkPixbuf', '2.0')
from gi.repository import GdkPixbuf

D = os.environ['LDM_DIALOG_DIR']
fails = 0


def check(name, cond, detail=''):
    global fails
    fails += 0 if cond else 1
    print(('ok - ' if cond else 'not ok - ') + name + ('  # ' + str(detail) if detail else ''),
          flush=True)
    return cond


def wait_file(name, timeout=120):
    for _ in range(int(timeout * 10)):
        if os.path.exists(os.path.join(D, name)):
            return True
        time.sleep(0.1)
    return False


def find(node, pred, depth=0):
    if node is None or depth > 30:
        return None
    try:
        if pred(node):
            return node
        for c in node:
            r = find(c, pred, depth + 1)
            if r is not None:
                return r
    except Exception:
        pass
    return None


def find_dialog(title, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        desk = pyatspi.Registry.getDesktop(0)
        for app in desk:
            if app is not None and app.name == 'gimp-ldm':
                dlg = find(app, lambda n: n.getRoleName() == 'dialog' and n.name == title)
                if dlg is not None:
                    return dlg
        time.sleep(0.3)
    return None


def extents(node):
    e = node.queryComponent().getExtents(pyatspi.DESKTOP_COORDS)
    return e.x, e.y, e.width, e.height


def click(node):
    x, y, w, h = extents(node)
    subprocess.run(['xdotool', 'mousemove', str(x + w // 2), str(y + h // 2), 'click', '1'],
                   check=False)


def button(dlg, label):
    return find(dlg, lambda n: n.getRoleName() in ('push button', 'button') and n.name == label)


def sensitive(node):
    return node.getState().contains(pyatspi.STATE_SENSITIVE)


def spin_after_label(dlg, label):
    """The spin button in the same row as the label `label`."""
    lab = find(dlg, lambda n: n.getRoleName() == 'label' and n.name == label)
    if lab is None:
        return None
    return find(lab.parent, lambda n: n.getRoleName() == 'spin button')


def set_spin(dlg, label, value):
    spin = spin_after_label(dlg, label)
    if spin is None:
        return False
    spin.queryValue().currentValue = float(value)
    return abs(spin.queryValue().currentValue - value) < 1e-6


def set_text(dlg, description_start, text):
    tv = find(dlg, lambda n: n.getRoleName() == 'text' and n.description.startswith(description_start))
    if tv is None:
        return False
    tv.queryEditableText().setTextContents(text)
    return True


_bars = {}


def progress(dlg):
    # the widgets are looked up once: walking the tree over D-Bus at every
    # poll is slow on a loaded machine
    bar = _bars.get(id(dlg)) or _bars.setdefault(
        id(dlg), find(dlg, lambda n: n.getRoleName() == 'progress bar'))
    v = bar.queryValue()
    return v.currentValue / (v.maximumValue or 1.0), bar


def progress_text(bar):
    try:
        return bar.queryText().getText(0, -1)
    except Exception:
        return bar.name


def shoot(node, path):
    x, y, w, h = extents(node)
    subprocess.run(['import', '-window', 'root', '-crop', '%dx%d+%d+%d' % (w, h, x, y),
                    '+repage', path], check=False)
    return path


def hf_ratio_pixbuf(pb):
    """var(4-neighbour Laplacian) / var(pixels), grey, interior pixels."""
    w, h, n, rs = pb.get_width(), pb.get_height(), pb.get_n_channels(), pb.get_rowstride()
    px = pb.get_pixels()
    g = [[sum(px[y * rs + x * n + c] for c in range(3)) / 3.0 for x in range(w)] for y in range(h)]
    vals = [g[y][x] for y in range(h) for x in range(w)]
    mean = sum(vals) / len(vals)
    var = sum((v - mean) ** 2 for v in vals) / len(vals)
    lap = [4 * g[y][x] - g[y - 1][x] - g[y + 1][x] - g[y][x - 1] - g[y][x + 1]
           for y in range(1, h - 1) for x in range(1, w - 1)]
    lm = sum(lap) / len(lap)
    lvar = sum((v - lm) ** 2 for v in lap) / len(lap)
    return lvar / max(var, 1e-6)


def noise_reference(work, size):
    """The same ratio for white noise at the work size scaled like the preview."""
    rnd = random.Random(1)
    data = bytes(rnd.randrange(256) for _ in range(work * work * 3))
    pb = GdkPixbuf.Pixbuf.new_from_bytes(gi.repository.GLib.Bytes.new(data), GdkPixbuf.Colorspace.RGB,
                                         False, 8, work, work, work * 3)
    return hf_ratio_pixbuf(pb.scale_simple(size, size, GdkPixbuf.InterpType.BILINEAR))


def preview_image(dlg):
    # the image inside the frame labelled "Preview"
    frame = find(dlg, lambda n: n.getRoleName() == 'panel' and n.name == 'Preview')
    return frame and find(frame, lambda n: n.getRoleName() in ('icon', 'image'))


# ---- 0. no dialog for a run that cannot work (no selection) -----------------------
t0 = time.time()
while not os.path.exists(os.path.join(D, 'dialog-1')) and time.time() - t0 < 120:
    if find_dialog('Inpaint Selection', timeout=0.5) is not None:
        open(os.path.join(D, 'saw-dialog-0'), 'w').close()
        break
check('no dialog opened for an inpaint without selection',
      not os.path.exists(os.path.join(D, 'saw-dialog-0')))

# ---- 1. cancel mid-run ------------------------------------------------------------
if not wait_file('dialog-1'):
    check('the GIMP side asked for the dialog', False)
    sys.exit(1)
dlg = find_dialog('Inpaint Selection')
if not check('the Inpaint Selection dialog opened', dlg is not None):
    sys.exit(1)
x, y, w, h = extents(dlg)
check('dialog content height <= 700 px', h <= 700, '%d x %d' % (w, h))
shoot(dlg, os.path.join(D, 'dialog.png'))

ok = set_text(dlg, 'What the picture should show', 'a red circle')
check('prompt typed', ok)
expander = find(dlg, lambda n: n.getRoleName() in ('toggle button', 'push button', 'button', 'panel', 'filler')
                and n.name.replace('_', '') == 'Advanced')
steps_ok = set_spin(dlg, 'Steps', 100)
if not steps_ok and expander is not None:
    click(expander)
    time.sleep(0.5)
    steps_ok = set_spin(dlg, 'Steps', 100)
check('Steps set to 100 (Advanced)', steps_ok)
check('Work size set to 320', set_spin(dlg, 'Work size', 320))
shoot(dlg, os.path.join(D, 'dialog-advanced.png'))
_, y2, _, h2 = extents(dlg)
print('# dialog height with Advanced open: %d' % h2, flush=True)

okb = button(dlg, 'OK')
cancel = button(dlg, 'Cancel')
pimg = preview_image(dlg)
frac, bar = progress(dlg)
click(okb)
t0 = time.time()
first = half = None
while time.time() - t0 < 240:
    frac, bar = progress(dlg)
    if first is None and frac >= 0.02:
        first = shoot(pimg, os.path.join(D, 'preview-first.png'))
    if half is None and frac >= 0.5:
        half = shoot(pimg, os.path.join(D, 'preview-half.png'))
        shoot(dlg, os.path.join(D, 'dialog-running.png'))
    if frac >= 0.6:
        break
    time.sleep(0.05)
at_click = frac
check('OK is insensitive while running', okb is not None and not sensitive(okb))
check('Cancel is clickable while running', cancel is not None and sensitive(cancel))
click(cancel)
t1 = time.time()
while time.time() - t1 < 60:
    frac, bar = progress(dlg)
    if sensitive(okb):    # the run has returned
        break
    time.sleep(0.05)
stopped = time.time() - t1
check('Cancel clicked at step %.0f of 100: the run returned, the dialog is usable '
      'again (OK sensitive)' % (at_click * 100), okb is not None and sensitive(okb),
      '%.1f s after the click' % stopped)
check('stopped within 2 steps of the click', (frac - at_click) * 100 <= 2.0 + 1e-6,
      'clicked at step %.0f, last step %.0f, %.1f s' % (at_click * 100, frac * 100, stopped))
shoot(dlg, os.path.join(D, 'dialog-cancelled.png'))

if first and half and os.path.exists(half):
    r_first = hf_ratio_pixbuf(GdkPixbuf.Pixbuf.new_from_file(first))
    pbh = GdkPixbuf.Pixbuf.new_from_file(half)
    r_half = hf_ratio_pixbuf(pbh)
    r_noise = noise_reference(320, pbh.get_width())
    check('preview at half the steps is not noise', r_half < 0.2 * r_noise,
          'laplacian/variance: first %.3f, half %.3f, white noise %.3f' % (r_first, r_half, r_noise))
else:
    check('preview screenshots taken', False, '%s %s' % (first, half))

click(button(dlg, 'Cancel'))   # now closes the dialog

# ---- 2. the dialog again: the values are remembered? run to the end -------------------
if wait_file('dialog-2'):
    dlg = find_dialog('Inpaint Selection')
    if check('the dialog opened again', dlg is not None):
        set_spin(dlg, 'Work size', 64)
        set_spin(dlg, 'Steps', 8)
        click(button(dlg, 'OK'))
if wait_file('sizes', 300):
    for title in ('Generate Layer', 'Refine Layer', 'Upscale Layer', 'Expand Canvas'):
        dlg = find_dialog(title)
        if not check('the %s dialog opened' % title, dlg is not None):
            continue
        x, y, w, h = extents(dlg)
        check('%s: dialog content height <= 700 px' % title, h <= 700, '%d x %d' % (w, h))
        shoot(dlg, os.path.join(D, 'dialog-%s.png' % title.split()[0].lower()))
        click(button(dlg, 'Cancel'))
        time.sleep(1)
wait_file('checks-done', 240)
sys.exit(1 if fails else 0)
