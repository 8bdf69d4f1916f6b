/*
 * sched/context_x86_64.S: the context switch for x86-64 System V.
 *
 *   tel__ctx_switch(rdi = tel__ctx_t *from, rsi = tel__ctx_t to, rdx = arg)
 *
 *   stack of `from` after the pushes        stack of `to` before the pops
 *   +--------------+ high                   +--------------+
 *   | return addr  |                         | return addr  |  (or trampoline)
 *   | rbp          |                         | rbp          |
 *   | rbx          |                         | rbx          |
 *   | r12          |                         | r12          |  (fresh: user)
 *   | r13          |                         | r13          |  (fresh: entry)
 *   | r14          |                         | r14          |
 *   | r15          | <- *from = rsp          | r15          | <- to
 *   +--------------+ low                     +--------------+
 *
 * rax carries arg to the resumed side: it is the return value of that side's
 * own tel__ctx_switch call, and the trampoline moves it into rdi.
 */
    .text
    .globl  tel__ctx_switch
    .hidden tel__ctx_switch
    .type   tel__ctx_switch, @function
    .p2align 4
tel__ctx_switch:
    .cfi_startproc
    pushq   %rbp
    pushq   %rbx
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    movq    %rsp, (%rdi)
    movq    %rsi, %rsp
    movq    %rdx, %rax
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    ret
    .cfi_endproc
    .size   tel__ctx_switch, .-tel__ctx_switch

    .globl  tel__ctx_trampoline
    .hidden tel__ctx_trampoline
    .type   tel__ctx_trampoline, @function
    .p2align 4
tel__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    movq    %rax, %rdi
    movq    %r12, %rsi
    callq   *%r13
    ud2
    .cfi_endproc
    .size   tel__ctx_trampoline, .-tel__ctx_trampoline

    .section .note.GNU-stack, "", @progbits
