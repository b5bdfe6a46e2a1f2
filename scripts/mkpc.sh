#!/bin/sh
# Writes privmem.pc to stdout: mkpc.sh INCLUDEDIR LIBDIR VERSION "PKG..." [rpath] ["LIBS..."]
# With "rpath" (the in-place file in build/, and the installed one), programs
# also find the shared library at run time without LD_LIBRARY_PATH.
# Requires: names the pkg-config modules privmem links against, so that
# `pkg-config --libs privmem` gives every library a program needs; LIBS are
# the libraries without a pkg-config file (Zydis), added to Libs.
set -eu
rpath=""
[ "${5:-}" = rpath ] && rpath=" -Wl,-rpath,\${libdir}"
extra="${6:-}"
[ -n "$extra" ] && extra=" $extra"
cat <<PC
includedir=$1
libdir=$2

Name: privmem
Description: Confidential-VM private memory (guest_memfd, KVM uAPI) in user space
Version: $3
Requires: $4
Cflags: -I\${includedir}
Libs: -L\${libdir}$rpath -lprivmem$extra -pthread -lm
PC
