/*
 * ctx_x86_64.S - context switch for x86-64 System V.
 *
 * coro__ctx_switch(void **from_sp, void *to_sp): push the callee-saved
 * registers (rbp rbx r12-r15), store rsp in *from_sp, load to_sp, pop the
 * other context's registers and return into it. No signal mask, no FPU
 * state: about 10 instructions. A fresh stack is prepared by
 * coro__ctx_make() in ctx.c so that the final `ret` enters its entry
 * function with a correctly aligned stack.
 */
    .text
    .globl coro__ctx_switch
    .type coro__ctx_switch, @function
    .p2align 4
coro__ctx_switch:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .cfi_endproc
    .size coro__ctx_switch, .-coro__ctx_switch

    .section .note.GNU-stack,"",%progbits
