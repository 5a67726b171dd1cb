/* wasm_signals.h: keeps Wasmtime's trap handlers in place under cmocka.
 *
 * Wasmtime turns a trap in compiled code (unreachable, an out-of-bounds
 * access, a stack overflow) into an error by catching the signal the CPU
 * raises (SIGILL, SIGSEGV, SIGBUS, SIGFPE) with handlers it installs once per
 * process, when the first engine is created. cmocka, around every test and
 * fixture, installs its own handlers for the same signals and afterwards
 * puts back what it found with signal(2), which drops SA_SIGINFO. Left alone,
 * a module that traps inside a test kills the test with "Illegal
 * instruction" instead of returning WASMRT_TRAPPED.
 *
 * So a test program that runs modules calls wasm_signals_save() in main()
 * before cmocka starts (creating an engine there, so Wasmtime's handlers are
 * installed over the default ones), and wasm_signals_restore() at the start
 * of every test that may trap. */
#ifndef WASMLET_TESTS_WASM_SIGNALS_H
#define WASMLET_TESTS_WASM_SIGNALS_H

#include "wasm/wasmrt.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static const int wasm_signal_list[] = {SIGILL, SIGSEGV, SIGBUS, SIGFPE};
static struct sigaction wasm_signal_saved[4];

static inline void wasm_signals_save(void)
{
    wasmrt_t *rt;
    err_t err;
    if (wasmrt_open(NULL, &rt, &err) == -1) {
        fprintf(stderr, "wasmrt_open: %s\n", err.msg);
        exit(1);
    }
    wasmrt_close(rt);
    for (int i = 0; i < 4; i++)
        sigaction(wasm_signal_list[i], NULL, &wasm_signal_saved[i]);
}

static inline void wasm_signals_restore(void)
{
    for (int i = 0; i < 4; i++)
        sigaction(wasm_signal_list[i], &wasm_signal_saved[i], NULL);
}

#endif
