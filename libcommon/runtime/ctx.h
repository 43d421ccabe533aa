/*
 * ctx.h - the machine context switch: save the callee-saved registers of
 * the running context, load another's. Three implementations: x86-64 SysV
 * and aarch64 assembly (ctx_*.S), and ucontext (portable, slow: a signal
 * mask syscall per switch), chosen by ./configure --with-context.
 *
 * Not for: deciding what runs next (sched.c), sanitizer bookkeeping (sched.c).
 * The floating-point control words are not saved: all coroutines of a thread
 * share the thread's rounding mode, as threads of a process share nothing else.
 */
#ifndef CORO_CTX_H
#define CORO_CTX_H

#include <stddef.h>

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#ifdef CORO_CTX_UCONTEXT
#include <ucontext.h>
typedef struct coro_ctx {
    ucontext_t *uc;
} coro_ctx_t;
#else
typedef struct coro_ctx {
    void *sp; /* saved stack pointer; the registers sit on the stack below it */
} coro_ctx_t;
/* Save the current context into from->sp and switch to to_sp. */
void coro__ctx_switch(void **from_sp, void *to_sp);
#endif

/*
 * Prepare ctx to start entry() on the stack [lo, lo+size) the first time it
 * is switched to. entry must never return. For ucontext, ctx->uc is
 * allocated here; coro__ctx_fini frees it. Returns 0 or -1/ENOMEM.
 */
int coro__ctx_make(coro_ctx_t *ctx, void *lo, size_t size, void (*entry)(void));
void coro__ctx_fini(coro_ctx_t *ctx);
/* Prepare ctx to be a switch source that is not a coroutine (a thread's
 * own stack, e.g. the worker's scheduler loop). */
int coro__ctx_init_thread(coro_ctx_t *ctx);

static inline void coro__ctx_swap(coro_ctx_t *from, coro_ctx_t *to)
{
#ifdef CORO_CTX_UCONTEXT
    swapcontext(from->uc, to->uc);
#else
    coro__ctx_switch(&from->sp, to->sp);
#endif
}

/* Stack pointer of a switched-out context, for the overflow check. */
static inline void *coro__ctx_sp(const coro_ctx_t *ctx)
{
#ifdef CORO_CTX_UCONTEXT
    return NULL; /* unknown: rely on the guard page */
#else
    return ctx->sp;
#endif
}

#endif
