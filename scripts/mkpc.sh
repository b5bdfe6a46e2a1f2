#!/bin/sh
# Writes privmem.pc to stdout: mkpc.sh INCLUDEDIR LIBDIR VERSION "PKG..." [rpath]
# With "rpath" (the in-place file in build/), programs also find the shared
# library at run time without LD_LIBRARY_PATH.
# Requires: names the pkg-config modules privmem links against, so that
# `pkg-config --libs privmem` gives every library a program needs.
set -eu
rpath=""
[ "${5:-}" = rpath ] && rpath=" -Wl,-rpath,\${libdir}"
cat <<PC
includedir=$1
libdir=$2

Name: privmem
Description: Confidential-VM private memory (guest_memfd, KVM uAPI) in user space
Version: $3
Requires: $4
Cflags: -I\${includedir}
Libs: -L\${libdir}$rpath -lprivmem -pthread -lm
PC
