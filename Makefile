# privmem: build, test and install.
#
#   make              library (static and shared), CLI, pkg-config file in build/
#   make check        build and run every test
#   make asan         build and run the tests under ASan + UBSan (build/asan)
#   make tsan         build and run the tests under TSan (build/tsan)
#   make fuzz         build the fuzz targets with clang + libFuzzer + ASan/UBSan
#                     (build/fuzz) and run each for FUZZ_SECONDS on its corpus
#   make fuzz-regress replay every corpus input once (make check does this too)
#   make fuzz-cov     source-based coverage of the corpus, per component (build/cov)
#   make install PREFIX=/usr/local   library, headers, CLI, man page, pkg-config file
#   make deps         install the Debian packages privmem needs (apt-get; sudo
#                     when not root); every other target installs them only
#                     when run as root, else checks and says what to run
#
# Sources are found by globbing: src/**/*.c is the library (except
# src/uapi/interpose/, the LD_PRELOAD interposer libprivmem-kvm.so, whose
# open/ioctl/mmap... must never be part of libprivmem), tools/*.c the CLI,
# tests/test_*.c one test program each (tests/lib/*.c is shared test code,
# tests/interpose/*.c programs that are not linked with privmem, run under
# the interposer).

BUILD    ?= build
PREFIX   ?= /usr/local
CC       ?= cc
VERSION  := 0.1.0

PKGS     := liburcu-bp libcrypto
# Zydis (the x86 decoder of src/vcpu/x86/) ships no pkg-config file in
# Debian 12's libzydis-dev: it is linked by name; libm for the SSE arithmetic.
EXTRA_LIBS := -lZydis -lm
SAN      ?=

ifeq ($(SAN),address)
  SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -DPM_ASAN=1
else ifeq ($(SAN),thread)
  SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer -DPM_TSAN=1
else ifeq ($(SAN),fuzzer)
  SANFLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined \
              -fno-omit-frame-pointer -DPM_ASAN=1
else ifeq ($(SAN),coverage)
  SANFLAGS := -fprofile-instr-generate -fcoverage-mapping
else
  SANFLAGS :=
endif

OPT      ?= -O2
WARN     := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wstrict-prototypes \
            -Wmissing-prototypes -Wformat=2 -Wvla
CPPFLAGS += -Iinclude -Isrc -D_GNU_SOURCE -DPM_VERSION='"$(VERSION)"'
# initial-exec TLS: thread-local state on hot paths (per-thread caches and
# slots) is one %fs-relative access instead of a __tls_get_addr call; the
# library is linked at start-up, not dlopen'ed, like the libraries it uses.
CFLAGS   += -std=gnu11 $(OPT) -g -fPIC -pthread -ftls-model=initial-exec $(WARN) $(SANFLAGS) $(EXTRA_CFLAGS)
LDFLAGS  += -pthread $(SANFLAGS)

DEPS_STAMP := $(BUILD)/.deps
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) $(EXTRA_LIBS)
TEST_LIBS  = $(shell pkg-config --libs cmocka 2>/dev/null)

LIB_SRCS  := $(sort $(shell find src -name '*.c' -not -path 'src/uapi/interpose/*'))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
TOOL_SRCS := $(sort $(wildcard tools/*.c))
TOOL_OBJS := $(TOOL_SRCS:%.c=$(BUILD)/obj/%.o)
TLIB_SRCS := $(sort $(wildcard tests/lib/*.c))
TLIB_OBJS := $(TLIB_SRCS:%.c=$(BUILD)/obj/%.o)
TEST_SRCS := $(sort $(wildcard tests/test_*.c))
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
# C++ tests: the public headers as a C++ program sees them.
CXX_TEST_SRCS := $(sort $(wildcard tests/test_*.cc))
CXX_TEST_BINS := $(CXX_TEST_SRCS:tests/%.cc=$(BUILD)/tests/%)
TEST_BINS += $(CXX_TEST_BINS)
IPOSE_SRCS := $(sort $(wildcard src/uapi/interpose/*.c))
IPOSE_OBJS := $(IPOSE_SRCS:%.c=$(BUILD)/obj/%.o)
IPROG_SRCS := $(sort $(wildcard tests/interpose/*.c))
IPROG_BINS := $(IPROG_SRCS:tests/interpose/%.c=$(BUILD)/tests/interpose/%)
# Fuzz targets: tests/fuzz/fuzz_NAME.c each, corpus in tests/fuzz/corpus/NAME/.
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))
REPLAY_BINS := $(FUZZ_NAMES:%=$(BUILD)/tests/fuzz_replay_%)
FUZZ_BINS  := $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz_%)
FUZZ_SECONDS ?= 60
FUZZ_FLAGS ?= -timeout=20 -rss_limit_mb=4096 -max_len=512
# Examples: programs built as a user builds them (pkg-config, the shared
# library), run by make check.
EXAMPLE_SRCS := $(sort $(wildcard examples/*.c))
EXAMPLE_BINS := $(EXAMPLE_SRCS:examples/%.c=$(BUILD)/examples/%)

STATIC := $(BUILD)/libprivmem.a
SHARED := $(BUILD)/libprivmem.so
CLI    := $(BUILD)/privmem
KVMSO  := $(BUILD)/libprivmem-kvm.so
PCFILE := $(BUILD)/privmem.pc

.PHONY: all check asan tsan install deps clean run selftests fuzz fuzz-run fuzz-regress fuzz-cov
all: $(STATIC) $(SHARED) $(CLI) $(PCFILE) $(KVMSO)

# Only `make deps` installs (asking sudo when not root); a build checks
# and, when something is missing, says what and how to install it.
deps:
	@./scripts/deps.sh --install
	@mkdir -p $(BUILD)
	@touch $(DEPS_STAMP)

$(DEPS_STAMP): scripts/deps.sh
	@mkdir -p $(@D)
	@./scripts/deps.sh
	@touch $@

$(BUILD)/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(STATIC): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(SHARED): $(LIB_OBJS)
	$(CC) -shared -Wl,-soname,libprivmem.so.0 -o $@.0 $^ $(LDFLAGS) $(PKG_LIBS)
	ln -sf libprivmem.so.0 $@

# The interposer: its own objects plus the library's (position independent),
# so the preloaded library needs nothing of privmem's beside it.
$(KVMSO): $(IPOSE_OBJS) $(LIB_OBJS)
	$(CC) -shared -o $@ $^ $(LDFLAGS) $(PKG_LIBS) -ldl

$(CLI): $(TOOL_OBJS) $(STATIC)
	$(CC) -o $@ $(TOOL_OBJS) $(STATIC) $(LDFLAGS) $(PKG_LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TLIB_OBJS) $(STATIC)
	@mkdir -p $(@D)
	$(CC) -o $@ $< $(filter $(BUILD)/obj/tools/%.o,$^) $(TLIB_OBJS) $(STATIC) $(LDFLAGS) $(PKG_LIBS) $(TEST_LIBS)

# The public headers compile as C++17 without a warning (g++ by default).
$(CXX_TEST_BINS): $(BUILD)/tests/%: tests/%.cc $(STATIC) $(wildcard include/privmem/*.h) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CXX) -std=c++17 -Iinclude -O1 -g -pthread -Wall -Wextra -Werror $(SANFLAGS) $< -o $@ \
		$(STATIC) $(LDFLAGS) $(PKG_LIBS) $(TEST_LIBS) -lm

# The CLI's VMM, tested in-process (tests/test_vmm.c).
$(BUILD)/tests/test_vmm: $(BUILD)/obj/tools/vmm.o $(BUILD)/obj/tools/vmm_watch.o $(BUILD)/obj/tools/vmm_tdx.o

# The firmware parser and the measurements (tests/test_measure.c runs the CLI
# too; tests/test_fuzz_firmware.c compiles them in with the fuzz target).
$(BUILD)/tests/test_measure: $(BUILD)/obj/tools/fw_image.o $(BUILD)/obj/tools/measure.o | $(CLI)


# Programs run under the interposer: plain C, not linked with privmem (only
# its headers, for KVM's constants), without sanitizers (like the programs
# users run; the sanitizer runtime comes in by LD_PRELOAD, see exec.c).
$(BUILD)/tests/interpose/%: tests/interpose/%.c include/privmem/kvm.h include/privmem/privmem.h | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -std=gnu11 -O1 -g -pthread $(WARN) $< -o $@ -ldl

$(BUILD)/tests/test_interpose: | $(KVMSO) $(CLI) $(IPROG_BINS)
$(BUILD)/tests/test_cli_tools: | $(KVMSO) $(CLI) $(IPROG_BINS)
$(BUILD)/tests/test_cli: | $(CLI)
# The documentation's test reads the sources (docs/, include/, src/, ...).
$(BUILD)/tests/test_docs: | $(CLI)
$(BUILD)/obj/tests/test_docs.o: CPPFLAGS += -DPM_SRCDIR='"$(CURDIR)"'

# Under TSan an example links the static library: TSan reads the library's
# suppressions (src/lib/rcu.c's, for liburcu) from the executable only.
ifeq ($(SAN),thread)
EXAMPLE_LIBS = $(STATIC) $(LDFLAGS) $(PKG_LIBS) -lm
else
EXAMPLE_LIBS = `PKG_CONFIG_PATH=$(BUILD) pkg-config --libs privmem`
endif
$(BUILD)/examples/%: examples/%.c $(SHARED) $(STATIC) $(PCFILE) $(wildcard include/privmem/*.h) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) -std=c11 -O2 -g -Wall -Wextra -Werror $(SANFLAGS) $< -o $@ \
		`PKG_CONFIG_PATH=$(BUILD) pkg-config --cflags privmem` $(EXAMPLE_LIBS)

# A fuzz target without libFuzzer: replay.c's main runs the target's corpus.
# (a static pattern: a pattern rule would let make chain it to remake the .d files)
$(FUZZ_NAMES:%=$(BUILD)/obj/tests/fuzz/replay-%.o): $(BUILD)/obj/tests/fuzz/replay-%.o: tests/fuzz/replay.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -DFUZZ_CORPUS='"$(abspath tests/fuzz/corpus/$*)"' -MMD -MP -c $< -o $@

$(REPLAY_BINS): $(BUILD)/tests/fuzz_replay_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(BUILD)/obj/tests/fuzz/replay-%.o $(STATIC)
	@mkdir -p $(@D)
	$(CC) -o $@ $^ $(LDFLAGS) $(PKG_LIBS)

# The libFuzzer binary (BUILD=build/fuzz SAN=fuzzer CC=clang, see `fuzz`).
$(FUZZ_BINS): $(BUILD)/fuzz/fuzz_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(STATIC)
	@mkdir -p $(@D)
	$(CC) -fsanitize=fuzzer -o $@ $^ $(LDFLAGS) $(PKG_LIBS)

# In-place pkg-config file: PKG_CONFIG_PATH=build pkg-config --cflags --libs privmem
$(PCFILE): Makefile
	@mkdir -p $(@D)
	@scripts/mkpc.sh "$(abspath include)" "$(abspath $(BUILD))" "$(VERSION)" "$(PKGS)" rpath "$(EXTRA_LIBS)" > $@

# The main job: privmem run on its default scenario.
run: all
	$(CLI) run

check: all $(TEST_BINS) $(REPLAY_BINS) $(EXAMPLE_BINS)
	@./scripts/runtests.sh $(TEST_BINS) $(REPLAY_BINS) $(EXAMPLE_BINS)

# Linux 6.12's KVM private-memory selftests, built unmodified from Debian's
# linux-source-6.12 (fetched and built in $(BUILD)/selftests, cached), each
# run under `privmem exec`.
selftests: all
	@./scripts/selftests.sh $(BUILD) $(abspath $(CLI)) $(SELFTESTS)

asan:
	$(MAKE) BUILD=build/asan SAN=address OPT=-O1 check

tsan:
	$(MAKE) BUILD=build/tsan SAN=thread OPT=-O1 check

# Fuzzing (clang and libFuzzer; scripts/deps.sh fuzz checks for them, and
# installs them as root). Each
# target runs FUZZ_SECONDS on a scratch copy of its corpus (new inputs go to
# build/fuzz/corpus/NAME, never into the checked-in corpus); a crash stops
# make with the reproducer's path. Add the reproducer to
# tests/fuzz/corpus/NAME/ once fixed: make check replays it from then on.
fuzz:
	@./scripts/deps.sh fuzz
	$(MAKE) BUILD=build/fuzz CC=clang SAN=fuzzer OPT=-O1 fuzz-run

fuzz-run: $(FUZZ_BINS)
	@for t in $(FUZZ_NAMES); do \
		rm -rf $(BUILD)/history-$$t; \
		mkdir -p $(BUILD)/corpus/$$t $(BUILD)/crashes $(BUILD)/history-$$t; \
		echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
		FUZZ_HISTORY_DIR=$(BUILD)/history-$$t $(BUILD)/fuzz/fuzz_$$t $(FUZZ_FLAGS) -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			-artifact_prefix=$(BUILD)/crashes/$$t- $(BUILD)/corpus/$$t tests/fuzz/corpus/$$t \
			> $(BUILD)/fuzz-$$t.log 2>&1; rc=$$?; \
		tail -n 12 $(BUILD)/fuzz-$$t.log; \
		if [ $$rc -ne 0 ]; then \
			echo "fuzz: $$t FAILED; reproducer:"; \
			sed -n 's/.*Test unit written to //p' $(BUILD)/fuzz-$$t.log; \
			echo "(inputs run before it, in order: $(BUILD)/history-$$t/)"; \
			exit 1; \
		fi; \
	done

fuzz-regress: $(REPLAY_BINS)
	@./scripts/runtests.sh $(REPLAY_BINS)

# Coverage of the corpus (checked-in, plus build/fuzz/corpus from `make fuzz`)
# per component, with clang's source-based coverage.
fuzz-cov:
	@./scripts/deps.sh fuzz
	$(MAKE) BUILD=build/cov CC=clang SAN=coverage OPT=-O1 $(FUZZ_NAMES:%=build/cov/tests/fuzz_replay_%)
	@./scripts/fuzz_cov.sh build/cov $(FUZZ_NAMES)

install: all
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include/privmem $(DESTDIR)$(PREFIX)/bin \
		$(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/doc/privmem
	install -m 644 $(STATIC) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(SHARED).0 $(DESTDIR)$(PREFIX)/lib/libprivmem.so.0
	ln -sf libprivmem.so.0 $(DESTDIR)$(PREFIX)/lib/libprivmem.so
	install -m 644 include/privmem/*.h $(DESTDIR)$(PREFIX)/include/privmem/
	install -m 755 $(CLI) $(DESTDIR)$(PREFIX)/bin/
	install -d $(DESTDIR)$(PREFIX)/lib/privmem
	install -m 755 $(KVMSO) $(DESTDIR)$(PREFIX)/lib/privmem/
	install -m 644 docs/privmem.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 LICENSE README.md docs/api.md docs/DESIGN.md $(DESTDIR)$(PREFIX)/share/doc/privmem/
	scripts/mkpc.sh "$(PREFIX)/include" "$(PREFIX)/lib" "$(VERSION)" "$(PKGS)" rpath "$(EXTRA_LIBS)" \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/privmem.pc

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
