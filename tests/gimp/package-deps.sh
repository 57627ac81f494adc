#!/bin/bash
# The unpacked portable package's binaries (package-test.sh runs this in the
# build chroot): every DT_NEEDED library of the plug-in is on the allow-list
# of libraries every GIMP 3.0 install has (libatk: GTK 3 itself needs it), ldm needs only the C library,
# neither carries an RPATH/RUNPATH outside $ORIGIN, and the highest GLIBC
# symbol version each needs is printed and at most GLIBC_MAX.
# Usage: package-deps.sh <unpacked package folder>
set -uo pipefail
P=${1:?package folder}
GLIBC_MAX=2.34   # pthread_* and __libc_start_main moved into libc.so.6 in 2.34
PLUGIN_ALLOW="libgimp-3.0.so.0 libgimpbase-3.0.so.0 libgimpui-3.0.so.0 libgimpwidgets-3.0.so.0
  libgimpcolor-3.0.so.0 libgimpconfig-3.0.so.0 libgimpmath-3.0.so.0 libgimpmodule-3.0.so.0
  libgegl-0.4.so.0 libbabl-0.1.so.0 libgtk-3.so.0 libgdk-3.so.0 libatk-1.0.so.0
  libglib-2.0.so.0 libgobject-2.0.so.0 libgio-2.0.so.0 libgmodule-2.0.so.0
  libcairo.so.2 libpango-1.0.so.0 libpangocairo-1.0.so.0 libgdk_pixbuf-2.0.so.0
  libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2 ld-linux-x86-64.so.2"
LIBC_ALLOW="libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2 ld-linux-x86-64.so.2"
rc=0

check() {   # $1 label, $2 binary, $3 allow-list
  local label=$1 bin=$2 allow=" $(echo $3) " lib bad= paths glibc
  [ -x "$bin" ] || { echo "not ok - $label: $bin missing"; rc=1; return; }
  for lib in $(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    case "$allow" in *" $lib "*) ;; *) bad="$bad $lib" ;; esac
  done
  if [ -z "$bad" ]; then
    echo "ok - $label: needs only allowed libraries ($(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' '))"
  else
    echo "not ok - $label: needs libraries outside the allow-list:$bad"; rc=1
  fi
  paths=$(readelf -d "$bin" | sed -n 's/.*(R\(UN\)\{0,1\}PATH).*\[\(.*\)\]/\2/p' | tr ':' '\n' | grep -v '^\$ORIGIN' || true)
  if [ -z "$paths" ]; then
    echo "ok - $label: no RPATH/RUNPATH outside \$ORIGIN"
  else
    echo "not ok - $label: RPATH/RUNPATH $paths"; rc=1
  fi
  glibc=$(objdump -T "$bin" | grep -oE 'GLIBC_[0-9]+\.[0-9]+(\.[0-9]+)?' | sed 's/GLIBC_//' | sort -Vu | tail -1)
  if [ "$(printf '%s\n%s\n' "$glibc" "$GLIBC_MAX" | sort -V | tail -1)" = "$GLIBC_MAX" ]; then
    echo "ok - $label: highest GLIBC symbol version GLIBC_$glibc (at most GLIBC_$GLIBC_MAX)"
  else
    echo "not ok - $label: needs GLIBC_$glibc > GLIBC_$GLIBC_MAX:" \
      "$(objdump -T "$bin" | grep -E "GLIBC_$glibc[^0-9.]" | awk '{print $NF}' | tr '\n' ' ')"; rc=1
  fi
  # nothing of OpenBLAS's Fortran part (libgfortran) or of jansson's shared
  # library slipped in by another name
  # (the symbol tables are read whole: grep -q would cut objdump's pipe)
  if objdump -T "$bin" | grep -E 'UND.*(_gfortran_|openblas_|json_)' >/dev/null; then
    echo "not ok - $label: OpenBLAS/jansson symbols left undefined"; rc=1
  else
    echo "ok - $label: OpenBLAS and jansson inside (no undefined openblas_/json_/_gfortran_ symbols)"
  fi
}

check "plug-in" "$P/profile/plug-ins/gimp-ldm/gimp-ldm" "$PLUGIN_ALLOW"
check "ldm" "$P/ldm" "$LIBC_ALLOW"
# ldm_blas_tune/ldm_blas_info look OpenBLAS up with dlsym: exported?
exported=1
for f in openblas_get_corename openblas_get_config; do
  for b in "$P/ldm" "$P/profile/plug-ins/gimp-ldm/gimp-ldm"; do
    if ! objdump -T "$b" | grep -E "\.text.* $f\$" >/dev/null; then
      echo "not ok - $(basename "$b") does not export $f (ldm_blas_tune cannot see OpenBLAS)"
      rc=1 exported=
    fi
  done
done
[ -n "$exported" ] && echo "ok - ldm and the plug-in export openblas_get_corename/openblas_get_config for ldm_blas_tune"
exit $rc
