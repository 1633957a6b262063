# tasklm build. `make` builds build/tasklm and build/libtasklm.a;
# `make test` installs what the tests need and runs the whole suite;
# `make demo` fetches the default model and runs the main job.
# BUILD=dir selects the output folder; MODE=asan builds with ASan/UBSan.

BUILD ?= build
MODE ?= release
CC ?= cc

WARN := -Wall -Wextra -Wshadow -Wno-unused-parameter -Wvla
CFLAGS_BASE := -std=c17 -D_GNU_SOURCE -Isrc -g -fno-omit-frame-pointer -pthread $(WARN)
ifeq ($(MODE),asan)
  CFLAGS_MODE := -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDFLAGS_MODE := -fsanitize=address,undefined
else
  CFLAGS_MODE := -O2
  LDFLAGS_MODE :=
endif
ifeq ($(WERROR),1)
  CFLAGS_MODE += -Werror
endif
CFLAGS ?=
CFLAGS += $(CFLAGS_BASE) $(CFLAGS_MODE)
LDLIBS := -lpcre2-8 -lutf8proc -lcjson -lmicrohttpd -linih -lm -lpthread

LIB_SRC := $(sort $(shell find src -name '*.c' -not -path 'src/cli/*'))
CLI_SRC := $(sort $(wildcard src/cli/*.c))
TEST_SRC := $(sort $(wildcard tests/unit/test_*.c))
TOOL_SRC := $(sort $(wildcard tools/*.c))

LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TEST_BIN := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_BIN := $(TOOL_SRC:tools/%.c=$(BUILD)/tools/%)

.PHONY: all lib unit-tests tools test demo clean fetch-model deps asan-unit
all: $(BUILD)/tasklm $(TOOL_BIN)

lib: $(BUILD)/libtasklm.a

$(BUILD)/libtasklm.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/tasklm: $(CLI_OBJ) $(BUILD)/libtasklm.a
	$(CC) $(CFLAGS) $(LDFLAGS_MODE) -o $@ $(CLI_OBJ) $(BUILD)/libtasklm.a $(LDLIBS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/tests/%: tests/unit/%.c tests/unit/tl_test.h $(BUILD)/libtasklm.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS_MODE) -o $@ $< $(BUILD)/libtasklm.a $(LDLIBS)

$(BUILD)/tools/%: tools/%.c $(BUILD)/libtasklm.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS_MODE) -o $@ $< $(BUILD)/libtasklm.a $(LDLIBS)

unit-tests: $(TEST_BIN)

deps:
	scripts/setup-deps.sh

fetch-model:
	scripts/fetch-model.sh

test:
	scripts/run-tests.sh

demo:
	scripts/demo.sh

clean:
	rm -rf build build-*

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
