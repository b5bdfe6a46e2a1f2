#!/bin/sh
# Writes privmem.pc to stdout: mkpc.sh INCLUDEDIR LIBDIR VERSION "PKG..."
# Requires: names the pkg-config modules privmem links against, so that
# `pkg-config --libs privmem` gives every library a program needs.
set -eu
cat <<PC
includedir=$1
libdir=$2

Name: privmem
Description: Confidential-VM private memory (guest_memfd, KVM uAPI) in user space
Version: $3
Requires: $4
Cflags: -I\${includedir}
Libs: -L\${libdir} -lprivmem -pthread -lm
PC
