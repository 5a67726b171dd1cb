/* test_wasmtime_fdcap.c: C tests of the wrapper's descriptor cap
 * (deps/wasmtime-capi/src/fdcap.rs, declared in src/wasm/wasmlet_capi.h):
 * wasmlet_linker_cap_descriptors, wasmlet_context_set_descriptor_cap and
 * wasmlet_context_descriptors_held, called directly on a core linker;
 * wasmlet_component_linker_cap_descriptors's and
 * wasmlet_context_set_descriptor_observer's argument checks (their effect
 * on components is tested in test_wasmtime_wrapper.c and, through wasm/,
 * in test_wasm_component.c).
 *
 * The guest is WAT built in-process: open_n(n) calls path_open n times on
 * the preopen (fd 3) creating file "f", and returns (successes << 8) | the
 * last errno; close_last() closes the last descriptor opened. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/fs.h"
#include "wasm/wasmlet_capi.h"
#include "wasm_signals.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERRNO_MFILE 33

static const char opener[] =
    "(module\n"
    "  (import \"wasi_snapshot_preview1\" \"path_open\"\n"
    "    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))\n"
    "  (import \"wasi_snapshot_preview1\" \"fd_close\" (func $close (param i32) (result i32)))\n"
    "  (memory (export \"memory\") 1)\n"
    "  (data (i32.const 0) \"f\")\n"
    "  (func (export \"open_n\") (param $n i32) (result i32)\n"
    "    (local $i i32) (local $ok i32) (local $e i32)\n"
    "    (block $done (loop $next\n"
    "      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))\n"
    "      (local.set $e (call $open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 1)\n"
    "        (i32.const 1) (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0)\n"
    "        (i32.const 16)))\n"
    "      (if (i32.eqz (local.get $e))\n"
    "        (then (local.set $ok (i32.add (local.get $ok) (i32.const 1)))))\n"
    "      (local.set $i (i32.add (local.get $i) (i32.const 1)))\n"
    "      (br $next)))\n"
    "    (i32.or (i32.shl (local.get $ok) (i32.const 8)) (local.get $e)))\n"
    "  (func (export \"close_last\") (result i32) (call $close (i32.load (i32.const 16)))))\n";

static wasm_engine_t *engine;
static wasmtime_linker_t *linker;
static wasmtime_module_t *module;
static char dir[] = "/tmp/wasmlet-fdcap-XXXXXX";

static void check_ok(wasmtime_error_t *error, const char *what)
{
    if (!error) return;
    wasm_name_t msg;
    wasmtime_error_message(error, &msg);
    fail_msg("%s: %.*s", what, (int)msg.size, msg.data);
}

typedef struct guest {
    wasmtime_store_t *store;
    wasmtime_instance_t inst;
} guest_t;

/* A store with WASI (dir preopened at "."), capped at max (0: no cap). */
static void guest_new(guest_t *g, size_t max)
{
    g->store = wasmtime_store_new(engine, NULL, NULL);
    wasmtime_context_t *cx = wasmtime_store_context(g->store);
    wasi_config_t *wasi = wasi_config_new();
    assert_true(wasi_config_preopen_dir(wasi, dir, ".", true));
    check_ok(wasmtime_context_set_wasi(cx, wasi), "set_wasi");
    if (max) check_ok(wasmlet_context_set_descriptor_cap(cx, max), "set cap");
    wasm_trap_t *trap = NULL;
    check_ok(wasmtime_linker_instantiate(linker, cx, module, &g->inst, &trap), "instantiate");
    assert_null(trap);
}

static int call(guest_t *g, const char *name, int arg, bool has_arg)
{
    wasmtime_context_t *cx = wasmtime_store_context(g->store);
    wasmtime_extern_t f;
    assert_true(wasmtime_instance_export_get(cx, &g->inst, name, strlen(name), &f));
    wasmtime_val_t a = {.kind = WASMTIME_I32, .of.i32 = arg}, res;
    wasm_trap_t *trap = NULL;
    check_ok(
        wasmtime_func_call(cx, &f.of.func, has_arg ? &a : NULL, has_arg ? 1 : 0, &res, 1, &trap),
        name);
    if (trap) fail_msg("%s trapped", name);
    return res.of.i32;
}

static int open_n(guest_t *g, int n)
{
    return call(g, "open_n", n, true);
}

static void cap_returns_mfile_and_frees_on_close(void **state)
{
    (void)state;
    wasm_signals_restore();
    guest_t g;
    guest_new(&g, 5);
    wasmtime_context_t *cx = wasmtime_store_context(g.store);
    /* Wasmtime's preview-1 context opens its preopens on the guest's first
     * WASI call, so nothing is held yet; from then on the preopen is one of
     * the five. */
    assert_int_equal(wasmlet_context_descriptors_held(cx), 0);
    int r = open_n(&g, 10);
    assert_int_equal(r >> 8, 4);
    assert_int_equal(r & 0xff, ERRNO_MFILE);
    assert_int_equal(wasmlet_context_descriptors_held(cx), 5);
    /* Closing one makes room for exactly one more. */
    assert_int_equal(call(&g, "close_last", 0, false), 0);
    assert_int_equal(wasmlet_context_descriptors_held(cx), 4);
    assert_int_equal(open_n(&g, 1), 1 << 8);
    assert_int_equal(open_n(&g, 1), ERRNO_MFILE);
    /* Raising the cap at run time applies to the next open. */
    check_ok(wasmlet_context_set_descriptor_cap(cx, 7), "raise cap");
    r = open_n(&g, 5);
    assert_int_equal(r >> 8, 2);
    assert_int_equal(r & 0xff, ERRNO_MFILE);
    assert_int_equal(wasmlet_context_descriptors_held(cx), 7);
    wasmtime_store_delete(g.store);
}

static void no_cap_no_limit(void **state)
{
    (void)state;
    wasm_signals_restore();
    guest_t g;
    guest_new(&g, 0);
    int r = open_n(&g, 300);
    assert_int_equal(r >> 8, 300);
    assert_int_equal(r & 0xff, 0);
    assert_int_equal(wasmlet_context_descriptors_held(wasmtime_store_context(g.store)), 301);
    wasmtime_store_delete(g.store);
}

static void stores_are_capped_separately(void **state)
{
    (void)state;
    wasm_signals_restore();
    guest_t a, b;
    guest_new(&a, 3);
    guest_new(&b, 0);
    assert_int_equal(open_n(&a, 5) >> 8, 2);
    assert_int_equal(open_n(&b, 50) >> 8, 50);
    assert_int_equal(open_n(&a, 1), ERRNO_MFILE);
    wasmtime_store_delete(a.store);
    wasmtime_store_delete(b.store);
}

static void errors(void **state)
{
    (void)state;
    wasmtime_error_t *e = wasmlet_linker_cap_descriptors(NULL);
    assert_non_null(e);
    wasmtime_error_delete(e);
    e = wasmlet_component_linker_cap_descriptors(NULL);
    assert_non_null(e);
    wasmtime_error_delete(e);
    /* On a linker with WASI 0.2 the shadows replace the stock functions,
     * and may do so again. */
    wasmtime_component_linker_t *cl = wasmtime_component_linker_new(engine);
    check_ok(wasmtime_component_linker_add_wasip2(cl), "add wasip2");
    check_ok(wasmlet_component_linker_cap_descriptors(cl), "cap component descriptors");
    check_ok(wasmlet_component_linker_cap_descriptors(cl), "cap twice");
    wasmtime_component_linker_delete(cl);
    /* No WASI context yet. */
    wasmtime_store_t *store = wasmtime_store_new(engine, NULL, NULL);
    e = wasmlet_context_set_descriptor_cap(wasmtime_store_context(store), 3);
    assert_non_null(e);
    wasmtime_error_delete(e);
    e = wasmlet_context_set_descriptor_observer(wasmtime_store_context(store), NULL, NULL);
    assert_non_null(e);
    wasmtime_error_delete(e);
    assert_int_equal(wasmlet_context_descriptors_held(wasmtime_store_context(store)), 0);
    wasmtime_store_delete(store);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir)) return -1;
    engine = wasm_engine_new();
    linker = wasmtime_linker_new(engine);
    if (wasmtime_linker_define_wasi(linker) || wasmlet_linker_cap_descriptors(linker)) return -1;
    wasm_byte_vec_t bin;
    if (wasmtime_wat2wasm(opener, strlen(opener), &bin)) return -1;
    wasmtime_error_t *e = wasmtime_module_new(engine, (const uint8_t *)bin.data, bin.size, &module);
    wasm_byte_vec_delete(&bin);
    return e ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    wasmtime_module_delete(module);
    wasmtime_linker_delete(linker);
    wasm_engine_delete(engine);
    fs_rm_rf(dir, NULL);
    return 0;
}

int main(void)
{
    wasm_signals_save();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cap_returns_mfile_and_frees_on_close),
        cmocka_unit_test(no_cap_no_limit),
        cmocka_unit_test(stores_are_capped_separately),
        cmocka_unit_test(errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
