# Driver half of the interactive dialog checks (see ldm_dialog.py): finds the
# plug-in's dialog on the accessibility bus (AT-SPI), types and sets values
# there, presses OK and Cancel with real mouse clicks (xdotool at the
# buttons' screen positions), photographs the live preview, and checks:
#  - the dialog's content is at most 700 px tall;
#  - Cancel clicked mid-run stops the run within a step or two, adds
#    nothing, and leaves the dialog usable (OK sensitive again);
#  - the preview at about half the steps is a picture, not noise: the ratio
#    of its Laplacian energy to its variance is far below white noise's;
#  - the Control section: a control layer, ControlNet and preprocessor
#    picked in it show the control image, the dialog stays <= 700 px with
#    the section open (Generate, Refine, Inpaint), and it opens again as it
#    was left;
#  - a damaged model file picked with the file chooser: the engine's message
#    in full under the model row, OK off, the dialog as wide as before.
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


def preview_image(dlg, frame_name='Preview'):
    # the image inside the frame labelled "Preview" (or frame_name)
    frame = find(dlg, lambda n: n.getRoleName() == 'panel' and n.name == frame_name)
    return frame and find(frame, lambda n: n.getRoleName() in ('icon', 'image'))


def find_all(node, pred, depth=0, out=None):
    out = [] if out is None else out
    if node is None or depth > 30:
        return out
    try:
        if pred(node):
            out.append(node)
        for c in node:
            find_all(c, pred, depth + 1, out)
    except Exception:
        pass
    return out


def in_row(dlg, label, roles):
    """The widget of one of `roles` right of the label `label`, in its row."""
    lab = find(dlg, lambda n: n.getRoleName() == 'label' and n.name.replace('_', '') == label)
    if lab is None:
        return None
    lx, ly, lw, lh = extents(lab)
    best = None
    for n in find_all(lab.parent, lambda n: n.getRoleName() in roles):
        x, y, w, h = extents(n)
        if x >= lx + lw and y <= ly + lh // 2 <= y + h and (best is None or x < extents(best)[0]):
            best = n
    return best


def combo_items(combo):
    """The texts a combo box offers (its popup menu's items)."""
    menu = find(combo, lambda n: n.getRoleName() == 'menu')
    return [c.name for c in menu] if menu is not None else []


def pick(combo, text):
    """Selects the first item of the combo box whose text contains `text`
    (case ignored), as a user picking it from the list; True when the combo
    shows it afterwards."""
    if combo is None:
        return False
    items = combo_items(combo)
    for i, name in enumerate(items):
        if text.lower() in name.lower():
            combo.querySelection().selectChild(i)
            time.sleep(0.5)
            return text.lower() in combo.name.lower()
    print('# %r not among %r' % (text, items), flush=True)
    return False


def find_expander(dlg, label):
    return find(dlg, lambda n: n.name.replace('_', '') == label
                and n.getState().contains(pyatspi.STATE_EXPANDABLE))


def expanded(node):
    return node.getState().contains(pyatspi.STATE_EXPANDED)


def set_expanded(dlg, label, want):
    """Opens (want True) or closes the expander `label` with a click on its
    title, as a user does; True when it is then as wanted."""
    exp = find_expander(dlg, label)
    if exp is None:
        return False
    # the expander's extents span the row (and its content when open); its
    # arrow and title are at the top left (the middle of the row is no title)
    x, y, w, h = extents(exp)
    for _ in range(2):
        if expanded(exp) == want:
            return True
        subprocess.run(['xdotool', 'mousemove', str(x + 24), str(y + 8), 'click', '1'],
                       check=False)
        time.sleep(1.0)
    if expanded(exp) != want:
        # (seen when closing a section that was open when the dialog
        # appeared): its accessible action, as a keyboard user would
        shoot(dlg, os.path.join(D, 'expander-%s.png' % label.lower()))
        print('# %s: %s at %s; clicked at (%d, %d), still %s: toggled by its action' % (
            label, exp.getRoleName(), (x, y, w, h), x + 24, y + 8,
            'open' if expanded(exp) else 'closed'), flush=True)
        exp.queryAction().doAction(0)
        time.sleep(1.0)
    return expanded(exp) == want


def image_spread(path):
    """Standard deviation of the grey values of a PNG (0: one flat colour)."""
    pb = GdkPixbuf.Pixbuf.new_from_file(path)
    w, h, n, rs, px = pb.get_width(), pb.get_height(), pb.get_n_channels(), pb.get_rowstride(), \
        pb.get_pixels()
    g = [sum(px[y * rs + x * n + c] for c in range(3)) / 3.0 for y in range(h) for x in range(w)]
    m = sum(g) / len(g)
    return (sum((v - m) ** 2 for v in g) / len(g)) ** 0.5


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
check('Advanced opened (click)', set_expanded(dlg, 'Advanced', True))
check('Steps set to 100 (Advanced)', set_spin(dlg, 'Steps', 100))
check('Work size set to 320', set_spin(dlg, 'Work size', 320))
shoot(dlg, os.path.join(D, 'dialog-advanced.png'))
_, y2, w2, h2 = extents(dlg)
check('dialog content height <= 700 px with Advanced open', h2 <= 700, '%d x %d' % (w2, h2))
# Control and Advanced open one at a time (together they pass 700 px)
check('Control opened (click)', set_expanded(dlg, 'Control', True))
time.sleep(0.5)
_, _, w3, h3 = extents(dlg)
check('opening Control closed Advanced; <= 700 px',
      not expanded(find_expander(dlg, 'Advanced')) and h3 <= 700, '%d x %d' % (w3, h3))
check('opening Control keeps the dialog\'s width (the column was made as wide from the start)',
      w3 == w2, 'Advanced open %d, Control open %d' % (w2, w3))
check('Advanced reopened (click) closes Control',
      set_expanded(dlg, 'Advanced', True) and not expanded(find_expander(dlg, 'Control')))

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
        w_run = extents(dlg)[2]
    if frac >= 0.6:
        break
    time.sleep(0.05)
at_click = frac
check('the dialog keeps its width while running (progress text, preview)',
      half is not None and w_run == w2, 'before %d, running %s' % (w2, w_run if half else '?'))
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


def broken_model_run(dlg):
    """A damaged model file picked with the model button's file chooser
    (location typed, as a keyboard user does): the dialog reads it at once
    and says why it cannot be used, in full under the model row (the long
    tensor name wrapped, not widening the dialog), and OK stays off."""
    path = os.environ.get('LDM_DIALOG_BROKEN_MODEL', '')
    w0 = extents(dlg)[2]
    chooser = find(dlg, lambda n: n.getRoleName() in ('push button', 'button') and n.name == '(None)' and
                   n.getState().contains(pyatspi.STATE_SHOWING))
    if not check('the model file button is there', chooser is not None and path):
        return
    click(chooser)
    fc, t0 = None, time.time()
    while fc is None and time.time() - t0 < 20:
        time.sleep(0.5)
        for app in pyatspi.Registry.getDesktop(0):
            if app is not None and app.name == 'gimp-ldm':
                fc = find(app, lambda n: n.getRoleName() in ('file chooser', 'dialog') and
                          n.name != 'Generate Layer')
                if fc is not None:
                    break
    if not check('the file chooser opened from the model button', fc is not None):
        return
    time.sleep(0.5)
    # no window manager here: the keyboard goes to the chooser once focused
    wid = subprocess.run(['xdotool', 'search', '--onlyvisible', '--name', '^Choose a model file$'],
                         capture_output=True, text=True).stdout.split()
    if wid:
        subprocess.run(['xdotool', 'windowfocus', '--sync', wid[0]], check=False)
    time.sleep(0.3)
    subprocess.run(['xdotool', 'key', '--clearmodifiers', 'ctrl+l'], check=False)
    time.sleep(0.5)
    subprocess.run(['xdotool', 'type', '--delay', '5', path], check=False)
    time.sleep(0.5)
    subprocess.run(['xdotool', 'key', 'Return'], check=False)
    time.sleep(1.5)
    check('the damaged file picked in the chooser (location typed, Return)',
          find(dlg, lambda n: n.getRoleName() in ('push button', 'button') and
               n.name == os.path.basename(path)) is not None)
    okb = button(dlg, 'OK')
    msg, t0 = None, time.time()
    while msg is None and time.time() - t0 < 30:
        time.sleep(0.3)
        msg = find(dlg, lambda n: n.getRoleName() == 'label' and 'truncated file' in (n.name or ''))
    check('a damaged model: the dialog says why it cannot be used, the engine\'s message in full',
          msg is not None and os.path.basename(path) in msg.name and msg.name.endswith('truncated file?)'),
          msg.name if msg is not None else 'no message')
    mc = in_row(dlg, 'Model:', ('combo box',))
    check('... and the model list names the chosen file (not "Default")',
          mc is not None and mc.name == os.path.basename(path) + ' (chosen file)', mc.name if mc else None)
    check('... OK is off (nothing to run) and the dialog keeps its width',
          okb is not None and not sensitive(okb) and extents(dlg)[2] == w0,
          'width %d -> %d' % (w0, extents(dlg)[2]))
    subprocess.run(['xdotool', 'mousemove', '0', '0'], check=False)    # no tooltip in the picture
    time.sleep(0.5)
    shoot(dlg, os.path.join(D, 'dialog-error.png'))
    # back to the bundled model from the list: usable again, the file's item gone
    picked = pick(mc, 'Default')
    time.sleep(1.0)
    mc = in_row(dlg, 'Model:', ('combo box',))
    check('the default model picked back from the list: OK on again, the chosen file\'s item gone',
          picked and okb is not None and sensitive(okb) and mc is not None and
          not any('(chosen file)' in t for t in combo_items(mc)),
          combo_items(mc) if mc else None)


if wait_file('sizes', 300):
    for title in ('Generate Layer', 'Refine Layer', 'Upscale Layer', 'Expand Canvas'):
        dlg = find_dialog(title)
        if not check('the %s dialog opened' % title, dlg is not None):
            continue
        x, y, w, h = extents(dlg)
        check('%s: dialog content height <= 700 px' % title, h <= 700, '%d x %d' % (w, h))
        shoot(dlg, os.path.join(D, 'dialog-%s.png' % title.split()[0].lower()))
        if title == 'Generate Layer':
            broken_model_run(dlg)
        click(button(dlg, 'Cancel'))
        time.sleep(1)

# ---- 3. the Control section (ControlNet) ---------------------------------------------
# The ControlNet must fit the model: the demo ControlNet with the demo model
# when the demo models have one, else the tiny test pair of tests/golden
# (ldm-test-sd1 + ldm-test-control, in the model folders of this test)
if wait_file('control-1', 300):
    dlg = find_dialog('Generate Layer')
    if check('the Generate Layer dialog opened on the image with a scribble layer', dlg is not None):
        _, _, _, h_before = extents(dlg)
        check('Control section opened (click)', set_expanded(dlg, 'Control', True))
        cn = in_row(dlg, 'ControlNet model:', ('combo box',))
        demo_cn = [i for i in combo_items(cn) if i.startswith('ldm-demo-control')] if cn else []
        if demo_cn:
            want = 'ldm-demo-control'
        else:
            want = 'ldm-test-control'
            check('model ldm-test-sd1 picked', pick(in_row(dlg, 'Model:', ('combo box',)),
                                                    'ldm-test-sd1'))
            time.sleep(1.0)
            cn = in_row(dlg, 'ControlNet model:', ('combo box',))
        check('control layer "Scribble" picked',
              pick(in_row(dlg, 'Control layer:', ('combo box',)), 'Scribble'))
        check('ControlNet %s picked' % want, pick(cn, want), combo_items(cn) if cn else None)
        open(os.path.join(D, 'control-picked'), 'w').write(want)
        # Canny on the background's faint stripes: the thresholds usable,
        # and the control image follows them (100/200: no edge; 5/10: the
        # stripes' edges)
        pre = in_row(dlg, 'Preprocessing:', ('combo box',))
        low = find(dlg, lambda n: n.getRoleName() == 'spin button' and n.name == 'Canny low')
        high = find(dlg, lambda n: n.getRoleName() == 'spin button' and n.name == 'Canny high')
        canny_on = pick(in_row(dlg, 'Control layer:', ('combo box',)), 'bg') and \
            pick(pre, 'canny') and low is not None and high is not None and sensitive(low)
        cimg = preview_image(dlg, 'Control image')
        spreads = []
        for lo, hi in ((100, 200), (5, 10)):
            if canny_on:
                low.queryValue().currentValue = float(lo)
                high.queryValue().currentValue = float(hi)
                time.sleep(1.5)
                spreads.append(image_spread(shoot(cimg, os.path.join(D, 'canny-%d.png' % lo))))
        check('canny on faint stripes: the control image follows the thresholds (grey spread '
              '%s at 100/200 and 5/10: below 5, above 20)' % ['%.1f' % v for v in spreads],
              canny_on and len(spreads) == 2 and spreads[0] < 5 and spreads[1] > 20)
        check('control layer "Scribble" picked again',
              pick(in_row(dlg, 'Control layer:', ('combo box',)), 'Scribble'))
        check('preprocessor "scribble" picked', pick(pre, 'scribble'))
        check('the Canny thresholds are usable with canny only',
              canny_on and low is not None and not sensitive(low))
        time.sleep(1.5)
        cimg = preview_image(dlg, 'Control image')
        size = cimg.queryImage().getImageSize() if cimg is not None else (0, 0)
        spread = image_spread(shoot(cimg, os.path.join(D, 'control-image.png'))) \
            if cimg is not None else 0.0
        check('the control image appears (picture %dx%d, grey spread %.1f > 20)'
              % (size[0], size[1], spread), size[0] > 0 and size[1] > 0 and spread > 20)
        x, y, w, h = extents(dlg)
        check('Generate Layer with Control open: dialog content height <= 700 px', h <= 700,
              '%d x %d (closed: %d)' % (w, h, h_before))
        shoot(dlg, os.path.join(D, 'dialog-control.png'))
        click(button(dlg, 'OK'))
if wait_file('control-2', 600):
    for title in ('Generate Layer', 'Refine Layer', 'Inpaint Selection'):
        dlg = find_dialog(title)
        if not check('the %s dialog opened again' % title, dlg is not None):
            continue
        w0 = extents(dlg)[2]
        exp = find_expander(dlg, 'Control')
        if title == 'Generate Layer':
            check('Generate Layer: the Control section opens as it was left (open)',
                  exp is not None and expanded(exp))
        heights = {}
        for want in (True, False):
            check('%s: Control %s (click)' % (title, 'opened' if want else 'closed'),
                  set_expanded(dlg, 'Control', want))
            time.sleep(0.5)
            heights[want] = extents(dlg)[3]
        widths = {}
        for want in (True, False):
            set_expanded(dlg, 'Control', want)
            time.sleep(0.5)
            widths[want] = extents(dlg)[2]
        w = extents(dlg)[2]
        check('%s: the same width as opened, with Control open and closed' % title,
              w0 == widths[True] == widths[False],
              'opened %d, Control open %d, closed %d' % (w0, widths[True], widths[False]))
        check('%s: dialog content height <= 700 px with Control open, and lower closed' % title,
              heights[True] <= 700 and heights[False] < heights[True],
              'open %d x %d, closed %d' % (w, heights[True], heights[False]))
        print('# %s height: Control open %d, closed %d (width %d)'
              % (title, heights[True], heights[False], w), flush=True)
        click(button(dlg, 'Cancel'))
        time.sleep(1)
wait_file('checks-done', 240)
sys.exit(1 if fails else 0)
