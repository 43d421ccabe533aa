/*
 * ctx.c - building the first frame of a fresh coroutine stack for the
 * assembly switch, or the ucontext equivalent. See ctx.h.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/ctx.h"

#ifdef CORO_CTX_UCONTEXT

int coro__ctx_make(coro_ctx_t *ctx, void *lo, size_t size, void (*entry)(void))
{
    if (!ctx->uc && !(ctx->uc = malloc(sizeof(*ctx->uc))))
        return -1;
    if (getcontext(ctx->uc) < 0)
        return -1;
    ctx->uc->uc_stack.ss_sp = lo;
    ctx->uc->uc_stack.ss_size = size;
    ctx->uc->uc_link = NULL;
    makecontext(ctx->uc, entry, 0);
    return 0;
}

void coro__ctx_fini(coro_ctx_t *ctx)
{
    free(ctx->uc);
    ctx->uc = NULL;
}

int coro__ctx_init_thread(coro_ctx_t *ctx)
{
    if (!ctx->uc && !(ctx->uc = calloc(1, sizeof(*ctx->uc))))
        return -1;
    return 0;
}

#else

int coro__ctx_make(coro_ctx_t *ctx, void *lo, size_t size, void (*entry)(void))
{
    uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
    void **sp;
#if defined(__x86_64__)
    /* r15 r14 r13 r12 rbx rbp | ret=entry | 0 (entry's fake return address):
     * after `ret`, rsp = top - 8, as if entry had been called. */
    sp = (void **)(top - 64);
    memset(sp, 0, 64);
    sp[6] = (void *)entry;
#elif defined(__aarch64__)
    /* the 176-byte frame popped by coro__ctx_switch; x30 (lr) = entry,
     * x29 (fp) = 0 ends backtraces; sp = top after the pop. */
    sp = (void **)(top - 176);
    memset(sp, 0, 176);
    sp[11] = (void *)entry;
#else
#error "no assembly context switch for this CPU; configure --with-context=ucontext"
#endif
    ctx->sp = sp;
    return 0;
}

void coro__ctx_fini(coro_ctx_t *ctx)
{
    ctx->sp = NULL;
}

int coro__ctx_init_thread(coro_ctx_t *ctx)
{
    ctx->sp = NULL;
    return 0;
}

#endif
