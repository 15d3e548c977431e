# lmzip — plain Makefile (see README.md).
#   make            build build/lmzip
#   make test       install missing Debian packages, build, run every test
#   make asan       build and test with AddressSanitizer + UBSan (build-asan/);
#                   this build also uses the baseline (non-AVX2) byte model
#                   loop, so the golden files check both paths give one result
#   make ubsan      build and test with UBSan alone (build-ubsan/)
#   make fuzz       build the libFuzzer decoder target (clang) in build-fuzz/
#   make bench      run bench/compare (other compressors side by side)
#   make demo       build, then compress and decompress samples/ with the default model
#   make install    lmzip, dsrn, lmzip.h, liblmzip.a and .so, lmzip.pc, the man
#                   pages, models/ under PREFIX (PREFIX/share/lmzip/models)
#   make arm        cross-build for AArch64 (NEON kernels) in build-arm/ and run
#                   the tests there under qemu-user: the same bits on ARM
#                   (LMZ_TEST_QEMU: tests/models.sh says what it leaves out)

CC      ?= cc
BUILD   ?= build
OPT     ?= -O3
WERROR  ?=
SAN     ?=
WARN    = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wvla -Wcast-align \
          -Wpointer-arith -Wformat=2 -Wundef
# -ffp-contract=off: no fused multiply-add behind our back; never -ffast-math
CFLAGS  ?= $(OPT) -g
ALL_CFLAGS = -std=c11 $(CFLAGS) -ffp-contract=off -fno-fast-math $(WARN) $(WERROR) $(SAN) \
             -Iinclude -Isrc -MMD -MP
PREFIX  ?= /usr/local
XXH_LIB ?= -lxxhash
LDLIBS  = $(XXH_LIB) -llzma -lpthread -lm
# oneDNN (libdnnl-dev) for the trainer's bf16 products, where it is installed
# (the arm cross build goes without: bf16 training is then refused)
DNNL ?= $(if $(wildcard /usr/include/oneapi/dnnl/dnnl.h),1,0)
TRAIN_DEFS = $(if $(filter 1,$(DNNL)),-DDSRN_DNNL)
TRAIN_LIBS = $(if $(filter 1,$(DNNL)),-ldnnl) -lopenblas -fopenmp -ljansson

# the zero-shot tasks (src/eval/tasks.c) read JSON: they go with the model tools
EVAL_TOOL_SRC = src/eval/tasks.c
LIB_SRC   = $(filter-out $(EVAL_TOOL_SRC),$(wildcard src/common/*.c src/codec/*.c src/predict/*.c src/model/*.c src/tensor/*.c src/eval/*.c))
LIB_OBJ   = $(LIB_SRC:%.c=$(BUILD)/%.o)
# the model-making side (tokenizer and DSRN trainers, the zero-shot tasks):
# the dsrn tool and the tests link it, lmzip does not
TRAIN_SRC = $(wildcard src/train/*.c) $(EVAL_TOOL_SRC)
TRAIN_OBJ = $(TRAIN_SRC:%.c=$(BUILD)/%.o)
TEST_SRC  = $(wildcard tests/unit/*.c)
TEST_OBJ  = $(TEST_SRC:%.c=$(BUILD)/%.o)

all: $(BUILD)/lmzip $(BUILD)/liblmzip.so $(BUILD)/dsrn $(BUILD)/unit_tests $(BUILD)/gradcheck $(BUILD)/fuzz_replay $(BUILD)/fuzz_gguf_replay \
     $(BUILD)/bench_rc $(BUILD)/bench_engine $(BUILD)/bench_train $(BUILD)/bench_qmm

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/liblmzip.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

# The shared library: the same objects (position independent, hidden unless
# lmzip.h marks them LMZ_API). Before 1.0 the soname carries major.minor:
# lmz_params may grow between minor versions.
VERSION = $(shell sed -n 's/^\#define LMZ_VERSION_STRING "\(.*\)"/\1/p' include/lmzip.h)
SOVER   = $(basename $(VERSION))
SONAME  = liblmzip.so.$(SOVER)
# A version script names them too: GCC exports target_clones resolvers
# whatever their visibility.
$(LIB_OBJ): ALL_CFLAGS += -fPIC -fvisibility=hidden
$(BUILD)/lmzip.map: include/lmzip.h
	@mkdir -p $(dir $@)
	{ echo '{ global:'; sed -n 's/^LMZ_API .*[ *]\(lmz_[a-z0-9_]*\)(.*/  \1;/p' $<; echo 'local: *; };'; } > $@
$(BUILD)/liblmzip.so: $(LIB_OBJ) $(BUILD)/lmzip.map
	$(CC) $(SAN) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=$(BUILD)/lmzip.map -Wl,--no-undefined \
	  -Wl,-z,relro -Wl,-z,now -o $(BUILD)/liblmzip.so.$(VERSION) $(LIB_OBJ) $(LDLIBS)
	ln -sf liblmzip.so.$(VERSION) $(BUILD)/$(SONAME)
	ln -sf liblmzip.so.$(VERSION) $@

# the installed models folder follows PREFIX (make install puts models/ there)
$(BUILD)/src/codec/modeldir.o: ALL_CFLAGS += -DLMZIP_MODELS_DIR='"$(PREFIX)/share/lmzip/models"'
$(BUILD)/lmzip: $(BUILD)/programs/lmzip.o $(BUILD)/programs/explain.o $(BUILD)/liblmzip.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

# the trainer: OpenMP for the elementwise work, OpenBLAS and oneDNN for the products
$(BUILD)/src/train/%.o: src/train/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(TRAIN_DEFS) -fopenmp -c $< -o $@

$(BUILD)/libdsrntrain.a: $(TRAIN_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/dsrn: $(BUILD)/programs/dsrn.o $(BUILD)/libdsrntrain.a $(BUILD)/liblmzip.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS) $(TRAIN_LIBS)

$(BUILD)/unit_tests: $(TEST_OBJ) $(BUILD)/libdsrntrain.a $(BUILD)/liblmzip.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS) $(TRAIN_LIBS)

# the gradient check: the trainer's network again, in float64
$(BUILD)/f64/net.o: src/train/net.c src/train/net.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fopenmp -DDSRN_F64 -c $< -o $@

$(BUILD)/f64/gradcheck.o: tests/gradcheck/gradcheck.c src/train/net.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DDSRN_F64 -c $< -o $@

$(BUILD)/gradcheck: $(BUILD)/f64/gradcheck.o $(BUILD)/f64/net.o $(BUILD)/liblmzip.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS) $(TRAIN_LIBS)

$(BUILD)/fuzz_replay: $(BUILD)/tests/fuzz/fuzz_decompress.o $(BUILD)/tests/fuzz/replay_main.o $(BUILD)/liblmzip.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/fuzz_gguf_replay: $(BUILD)/tests/fuzz/fuzz_gguf.o $(BUILD)/tests/fuzz/replay_main.o $(BUILD)/liblmzip.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench_engine: $(BUILD)/bench/bench_engine.o $(BUILD)/liblmzip.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench_train: $(BUILD)/bench/bench_train.o $(BUILD)/libdsrntrain.a $(BUILD)/liblmzip.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS) $(TRAIN_LIBS)

$(BUILD)/bench/bench_train.o: bench/bench_train.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fopenmp -c $< -o $@

$(BUILD)/bench_rc: $(BUILD)/bench/bench_rc.o $(BUILD)/liblmzip.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench_qmm: $(BUILD)/bench/bench_qmm.o $(BUILD)/liblmzip.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

deps:
	@sh scripts/deps.sh

# The cross build takes xxHash inline from the host's header (the library is
# not installed for arm64), OpenBLAS and libgomp from Debian's arm64 packages
# (multiarch); qemu-aarch64 runs the binaries through wrappers with the
# multiarch C library (-L /). (With the cross toolchain's own copy,
# -L /usr/aarch64-linux-gnu, once the arm64 libc6 is installed beside it,
# threaded tests never finished.)
ARM_CC ?= aarch64-linux-gnu-gcc
ARM_BIN = unit_tests gradcheck fuzz_replay fuzz_gguf_replay lmzip dsrn
arm:
	@DEPS_EXTRA="gcc-aarch64-linux-gnu qemu-user libopenblas-dev:arm64 libgomp1:arm64 liblzma-dev:arm64 libjansson-dev:arm64" sh scripts/deps.sh
	@mkdir -p build-arm/xxh build-arm/qemu
	ln -sf /usr/include/xxhash.h build-arm/xxh/xxhash.h
	$(MAKE) BUILD=build-arm CC=$(ARM_CC) XXH_LIB= DNNL=0 CFLAGS="-O2 -g -DXXH_INLINE_ALL -Ibuild-arm/xxh" \
	    $(ARM_BIN:%=build-arm/%)
	for b in $(ARM_BIN); do \
	    printf '#!/bin/sh\nexec qemu-aarch64 -L / "%s" "$$@"\n' "$$(pwd)/build-arm/$$b" > build-arm/qemu/$$b; \
	    chmod +x build-arm/qemu/$$b; done
	LMZ_TEST_QUICK=1 LMZ_TEST_QEMU=1 sh tests/run.sh build-arm/qemu

test: deps
	$(MAKE) all
	sh tests/run.sh $(BUILD)

asan:
	$(MAKE) BUILD=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -DLMZ_NO_MULTIVERSION" all
	LMZ_TEST_QUICK=1 sh tests/run.sh build-asan

ubsan:
	$(MAKE) BUILD=build-ubsan SAN="-fsanitize=undefined -fno-sanitize-recover=all" all
	LMZ_TEST_QUICK=1 sh tests/run.sh build-ubsan

# The byte model's inner loop is plain arithmetic: it is built with the
# sanitizers but without coverage feedback, which would only slow the fuzzer.
FUZZ_FLAGS = -std=c11 -O1 -g -ffp-contract=off -DLMZ_NO_MULTIVERSION -Iinclude -Isrc
fuzz:
	@mkdir -p build-fuzz
	clang $(FUZZ_FLAGS) -fsanitize=address,undefined -c src/predict/bytemodel.c -o build-fuzz/bytemodel.o
	clang $(FUZZ_FLAGS) -fsanitize=fuzzer,address,undefined -o build-fuzz/fuzz_decompress \
	  tests/fuzz/fuzz_decompress.c $(filter-out src/predict/bytemodel.c,$(LIB_SRC)) build-fuzz/bytemodel.o $(LDLIBS)
	clang $(FUZZ_FLAGS) -fsanitize=fuzzer,address,undefined -o build-fuzz/fuzz_gguf \
	  tests/fuzz/fuzz_gguf.c $(LIB_SRC) $(LDLIBS)
	@echo "run: build-fuzz/fuzz_decompress -max_len=8192 COPY_OF_tests/fuzz/corpus"
	@echo "     build-fuzz/fuzz_gguf -max_len=65536 COPY_OF_tests/fuzz/gguf-corpus"

bench: all
	sh bench/compare

demo: deps
	$(MAKE) all
	sh scripts/demo.sh $(BUILD)

DESTDIR ?=
install: $(BUILD)/lmzip $(BUILD)/dsrn $(BUILD)/liblmzip.a $(BUILD)/liblmzip.so
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	  $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(BUILD)/lmzip $(DESTDIR)$(PREFIX)/bin/lmzip
	install -m 755 $(BUILD)/dsrn $(DESTDIR)$(PREFIX)/bin/dsrn
	install -m 644 include/lmzip.h $(DESTDIR)$(PREFIX)/include/lmzip.h
	install -m 644 $(BUILD)/liblmzip.a $(DESTDIR)$(PREFIX)/lib/liblmzip.a
	install -m 755 $(BUILD)/liblmzip.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/liblmzip.so.$(VERSION)
	ln -sf liblmzip.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf liblmzip.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/liblmzip.so
	sed 's|@PREFIX@|$(PREFIX)|; s|@VERSION@|$(VERSION)|' lmzip.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/lmzip.pc
	install -m 644 docs/lmzip.1 $(DESTDIR)$(PREFIX)/share/man/man1/lmzip.1
	install -m 644 docs/dsrn.1 $(DESTDIR)$(PREFIX)/share/man/man1/dsrn.1
	install -d $(DESTDIR)$(PREFIX)/share/lmzip/models
	for m in models/*.gguf; do [ ! -f "$$m" ] || install -m 644 "$$m" $(DESTDIR)$(PREFIX)/share/lmzip/models/; done

clean:
	rm -rf build build-asan build-ubsan build-fuzz

.PHONY: arm all deps test asan ubsan fuzz bench demo install clean
-include $(LIB_OBJ:.o=.d) $(TRAIN_OBJ:.o=.d) $(TEST_OBJ:.o=.d) \
    $(wildcard $(BUILD)/programs/*.d $(BUILD)/tests/fuzz/*.d $(BUILD)/bench/*.d)
