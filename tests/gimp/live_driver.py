# Driver half of the live painting checks (see ldm_live.py): does what the
# GIMP side asks in cmd-N files and answers in reply-N:
#   open-live      Filters > Generative > Live Painting... from GIMP's own
#                  menu (the menu item's action on the accessibility bus,
#                  as a screen reader activates it); waits for the dialog
#                  and checks its height (<= 700 px)
#   click:LABEL    a real mouse click on the live dialog's button LABEL
#   keys:KEYS      xdotool key KEYS in the image window (ctrl+z, ctrl+y)
#   state          the dialog's state and latency lines
#   states:SECONDS the state line read as often as the accessibility bus
#                  answers for SECONDS: the distinct lines in order
#   spin:MAX=VALUE the dialog's spin button whose maximum is MAX (strength
#                  1, steps 4) set to VALUE, as an accessibility tool does
#   shot:NAME      a screenshot of the screen to NAME.png: GIMP's window
#                  on the left, the dialog beside it, the image zoomed to
#                  fit
#   wait-gone      until the live dialog has closed
#   quit
import os, subprocess, sys, time
import pyatspi

D = os.environ['LDM_LIVE_DIR']
fails = 0


def check(name, cond, detail=''):
    global fails
    fails += 0 if cond else 1
    print(('ok - ' if cond else 'not ok - ') + name + ('  # ' + str(detail) if detail else ''),
          flush=True)
    return cond


def find(node, pred, depth=0):
    if node is None or depth > 40:
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


def apps():
    desk = pyatspi.Registry.getDesktop(0)
    return [a for a in desk if a is not None]


def live_dialog(timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        for app in apps():
            if app.name == 'gimp-ldm':
                dlg = find(app, lambda n: n.getRoleName() == 'dialog' and n.name == 'Live Painting')
                if dlg is not None:
                    return dlg
        if timeout == 0:
            break
        time.sleep(0.3)
    return None


def extents(node):
    e = node.queryComponent().getExtents(pyatspi.DESKTOP_COORDS)
    return e.x, e.y, e.width, e.height


def xdo(*args):
    return subprocess.run(['xdotool'] + list(args), capture_output=True, text=True).stdout.strip()


def raise_window(name):
    ids = xdo('search', '--onlyvisible', '--name', name).split()
    if ids:
        xdo('windowraise', ids[0])
        xdo('windowfocus', '--sync', ids[0])
    return ids[0] if ids else None


def click(node):
    x, y, w, h = extents(node)
    subprocess.run(['xdotool', 'mousemove', str(x + w // 2), str(y + h // 2), 'click', '1'])


def open_live():
    # GIMP's own menu item, through its accessible action
    item = None
    t0 = time.time()
    while item is None and time.time() - t0 < 60:
        for app in apps():
            if app.name == 'gimp-ldm':
                continue
            item = find(app, lambda n: n.getRoleName() == 'menu item' and
                        n.name.replace('_', '').startswith('Live Painting'))
            if item is not None:
                break
        if item is None:
            time.sleep(1)
    how = 'menu item action'
    if item is not None:
        act = item.queryAction()
        act.doAction(0)
    else:
        # GIMP's action search, as a keyboard user would
        how = 'action search'
        raise_window('GIMP')
        xdo('key', '--clearmodifiers', 'slash')
        time.sleep(1)
        xdo('type', 'Live Painting')
        time.sleep(1)
        xdo('key', 'Return')
    dlg = live_dialog(90)
    if dlg is None:
        return 'no dialog (%s)' % how
    x, y, w, h = extents(dlg)
    check('Live Painting dialog content height <= 700 px', h <= 700, '%d x %d' % (w, h))
    return 'ok %s, dialog %d x %d' % (how, w, h)


def label_text(dlg, desc):
    lab = find(dlg, lambda n: n.getRoleName() == 'label' and n.description == desc)
    return lab.name if lab is not None else '?'


def do(cmd):
    if cmd == 'open-live':
        return open_live()
    if cmd.startswith('click:'):
        dlg = live_dialog(10)
        if dlg is None:
            return 'no dialog'
        want = cmd[6:]
        b = find(dlg, lambda n: n.getRoleName() in ('push button', 'button') and
                 n.name.replace('_', '') == want)
        if b is None:
            return 'no button %s' % want
        raise_window('^Live Painting$')
        time.sleep(0.3)
        click(b)
        return 'ok'
    if cmd.startswith('keys:'):
        raise_window('Untitled')
        time.sleep(0.2)
        xdo('key', '--clearmodifiers', cmd[5:])
        return 'ok'
    if cmd == 'state':
        dlg = live_dialog(5)
        if dlg is None:
            return 'no dialog'
        return '%s\n%s' % (label_text(dlg, 'live-state'), label_text(dlg, 'live-latency'))
    if cmd.startswith('states:'):
        dlg = live_dialog(5)
        if dlg is None:
            return 'no dialog'
        lab = find(dlg, lambda n: n.getRoleName() == 'label' and n.description == 'live-state')
        seen, t0, n = [], time.time(), 0
        while lab is not None and time.time() - t0 < float(cmd[7:]):
            try:
                v = lab.name
            except Exception:
                break
            n += 1
            if not seen or seen[-1] != v:
                seen.append(v)
            time.sleep(0.005)
        return '%d reads: %s' % (n, ' > '.join(seen))
    if cmd.startswith('spin:'):
        dlg = live_dialog(10)
        top, value = cmd[5:].split('=')

        def is_spin(n):
            if n.getRoleName() != 'spin button':
                return False
            try:
                return abs(n.queryValue().maximumValue - float(top)) < 1e-6
            except NotImplementedError:
                return False
        spin = dlg and find(dlg, is_spin)
        if spin is None:
            return 'no spin button up to %s' % top
        spin.queryValue().currentValue = float(value)
        return 'ok %g' % spin.queryValue().currentValue
    if cmd.startswith('prompt:'):
        dlg = live_dialog(10)
        tv = dlg and find(dlg, lambda n: n.getRoleName() == 'text' and
                          n.description.startswith('What the picture should show'))
        if tv is None:
            return 'no prompt box'
        tv.queryEditableText().setTextContents(cmd[7:])
        return 'ok'
    if cmd.startswith('shot:'):
        # the dialog at the right edge of the screen, GIMP's window (canvas
        # and Layers dock) filling the rest, the image zoomed to fit, the
        # pointer out of the way; the dialog's width is its X window's (no
        # window manager: no frame)
        sw, sh = (int(v) for v in xdo('getdisplaygeometry').split())
        wid = raise_window('^Live Painting$')
        dw = 490
        if wid:
            geo = dict(l.strip().split(': ', 1) for l in
                       xdo('getwindowgeometry', wid).splitlines()[1:] if ': ' in l)
            dw = int(geo.get('Geometry', '490x0').split('x')[0])
            xdo('windowmove', wid, str(sw - dw), '0')
        gimp = raise_window('Untitled')
        if gimp:
            xdo('windowmove', gimp, '0', '0')
            xdo('windowsize', gimp, str(sw - dw), str(sh - 24))
            time.sleep(0.5)
            xdo('key', '--clearmodifiers', 'shift+ctrl+j')     # View > Zoom > Fit Image
        if wid:
            raise_window('^Live Painting$')
        xdo('mousemove', str(sw - 5), str(sh - 5))
        time.sleep(1.5)
        subprocess.run(['import', '-window', 'root', os.path.join(D, cmd[5:] + '.png')])
        return 'ok'
    if cmd == 'wait-gone':
        t0 = time.time()
        while time.time() - t0 < 30:
            if live_dialog(0) is None:
                return 'ok after %.1f s' % (time.time() - t0)
            time.sleep(0.3)
        return 'still open'
    return 'unknown command'


n = 0
t_last = time.time()
while time.time() - t_last < 600:
    path = os.path.join(D, 'cmd-%d' % (n + 1))
    if not os.path.exists(path):
        if os.path.exists(os.path.join(D, 'checks-done')):
            break
        time.sleep(0.05)
        continue
    n += 1
    t_last = time.time()
    cmd = open(path).read()
    try:
        reply = do(cmd)
    except Exception as e:
        reply = 'error %r' % e
    print('# %s -> %s' % (cmd, reply.replace('\n', ' | ')), flush=True)
    with open(os.path.join(D, 'reply-%d.tmp' % n), 'w') as f:
        f.write(reply)
    os.rename(os.path.join(D, 'reply-%d.tmp' % n), os.path.join(D, 'reply-%d' % n))
    if cmd == 'quit':
        break
sys.exit(1 if fails else 0)
