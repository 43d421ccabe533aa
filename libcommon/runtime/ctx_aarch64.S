/*
 * ctx_aarch64.S - context switch for AArch64 (AAPCS64).
 *
 * coro__ctx_switch(void **from_sp, void *to_sp): store the callee-saved
 * registers x19-x30 and d8-d15 in a 176-byte frame on the current stack,
 * save sp to *from_sp, switch to to_sp, restore that frame and return
 * through the restored x30. coro__ctx_make() in ctx.c builds the first
 * frame of a fresh stack with x30 = entry.
 */
    .text
    .globl coro__ctx_switch
    .type coro__ctx_switch, %function
    .p2align 4
coro__ctx_switch:
    sub sp, sp, #176
    stp x19, x20, [sp, #0]
    stp x21, x22, [sp, #16]
    stp x23, x24, [sp, #32]
    stp x25, x26, [sp, #48]
    stp x27, x28, [sp, #64]
    stp x29, x30, [sp, #80]
    stp d8,  d9,  [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mov x2, sp
    str x2, [x0]
    mov sp, x1
    ldp x19, x20, [sp, #0]
    ldp x21, x22, [sp, #16]
    ldp x23, x24, [sp, #32]
    ldp x25, x26, [sp, #48]
    ldp x27, x28, [sp, #64]
    ldp x29, x30, [sp, #80]
    ldp d8,  d9,  [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    add sp, sp, #176
    ret
    .size coro__ctx_switch, .-coro__ctx_switch

    .section .note.GNU-stack,"",%progbits
