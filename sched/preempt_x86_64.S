/*
 * sched/preempt_x86_64.S: the asynchronous preemption trampoline, x86-64
 * System V (see the top of preempt.c for when it runs).
 *
 * The preemption signal's handler does not switch: it edits the
 * interrupted context so that sigreturn "calls" this trampoline from the
 * interrupted instruction. It leaves the interrupted code's 128-byte red
 * zone alone and stores the interrupted rip just below it, so on entry:
 *
 *   interrupted rsp ->  +--------------------+ high
 *                       | red zone, 128 B    |  (the interrupted code's)
 *                       +--------------------+
 *   rsp on entry    ->  | interrupted rip    |
 *                       | rflags             |  pushed here
 *                       | rax ... r15 (15)   |  pushed here; rbp = here
 *                       | (padding to 64)    |
 *                       | xsave/fxsave area  |  tel__preempt_xsize bytes
 *   rsp at the call ->  +--------------------+ low, 64-byte aligned
 *
 * Every register the interrupted code may be using is saved: the general
 * ones, rflags, and the whole x87/SSE/AVX/AVX-512 state (xsave with the
 * mask preempt.c computed from XCR0, fxsave where the CPU has no XSAVE).
 * Then tel__preempt_resume (C, scheduler.c's preemption, may switch to
 * other tasks and come back on another thread) runs with a clean direction
 * flag and an aligned stack, everything is restored, and `ret $128` jumps
 * back to the interrupted rip with the interrupted rsp.
 *
 * The unwind table marks this a signal frame whose caller's rsp is 128
 * bytes above the return address slot, so gdb and perf walk through it.
 */
    .text
    .globl  tel__preempt_tramp
    .hidden tel__preempt_tramp
    .type   tel__preempt_tramp, @function
    .p2align 4
tel__preempt_tramp:
    .cfi_startproc
    .cfi_signal_frame
    /* CFA = rsp + 8 (just above the return slot); the caller's rsp is
     * CFA + 128 (DW_CFA_val_offset_sf, rsp = 7, 128 / -8 = -16). */
    .cfi_escape 0x15, 0x07, 0x70
    pushfq
    .cfi_adjust_cfa_offset 8
    pushq   %rax
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rax, 0
    pushq   %rbx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbx, 0
    pushq   %rcx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rcx, 0
    pushq   %rdx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rdx, 0
    pushq   %rsi
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rsi, 0
    pushq   %rdi
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rdi, 0
    pushq   %rbp
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbp, 0
    pushq   %r8
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r8, 0
    pushq   %r9
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r9, 0
    pushq   %r10
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r10, 0
    pushq   %r11
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r11, 0
    pushq   %r12
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r12, 0
    pushq   %r13
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r13, 0
    pushq   %r14
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r14, 0
    pushq   %r15
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r15, 0
    movq    %rsp, %rbp
    .cfi_def_cfa_register rbp
    cld
    subq    tel__preempt_xsize(%rip), %rsp
    andq    $-64, %rsp
    /* XSAVE writes only XSTATE_BV of the header, and XRSTOR faults on
     * nonzero reserved header bytes: clear the 64-byte header first. */
    xorl    %eax, %eax
    movq    %rax, 512(%rsp)
    movq    %rax, 520(%rsp)
    movq    %rax, 528(%rsp)
    movq    %rax, 536(%rsp)
    movq    %rax, 544(%rsp)
    movq    %rax, 552(%rsp)
    movq    %rax, 560(%rsp)
    movq    %rax, 568(%rsp)
    cmpb    $0, tel__preempt_has_xsave(%rip)
    je      1f
    movl    tel__preempt_xmask(%rip), %eax
    movl    tel__preempt_xmask+4(%rip), %edx
    xsave64 (%rsp)
    jmp     2f
1:  fxsave64 (%rsp)
2:  call    tel__preempt_resume
    cmpb    $0, tel__preempt_has_xsave(%rip)
    je      3f
    movl    tel__preempt_xmask(%rip), %eax
    movl    tel__preempt_xmask+4(%rip), %edx
    xrstor64 (%rsp)
    jmp     4f
3:  fxrstor64 (%rsp)
4:  movq    %rbp, %rsp
    .cfi_def_cfa_register rsp
    popq    %r15
    .cfi_adjust_cfa_offset -8
    .cfi_restore r15
    popq    %r14
    .cfi_adjust_cfa_offset -8
    .cfi_restore r14
    popq    %r13
    .cfi_adjust_cfa_offset -8
    .cfi_restore r13
    popq    %r12
    .cfi_adjust_cfa_offset -8
    .cfi_restore r12
    popq    %r11
    .cfi_adjust_cfa_offset -8
    .cfi_restore r11
    popq    %r10
    .cfi_adjust_cfa_offset -8
    .cfi_restore r10
    popq    %r9
    .cfi_adjust_cfa_offset -8
    .cfi_restore r9
    popq    %r8
    .cfi_adjust_cfa_offset -8
    .cfi_restore r8
    popq    %rbp
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbp
    popq    %rdi
    .cfi_adjust_cfa_offset -8
    .cfi_restore rdi
    popq    %rsi
    .cfi_adjust_cfa_offset -8
    .cfi_restore rsi
    popq    %rdx
    .cfi_adjust_cfa_offset -8
    .cfi_restore rdx
    popq    %rcx
    .cfi_adjust_cfa_offset -8
    .cfi_restore rcx
    popq    %rbx
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbx
    popq    %rax
    .cfi_adjust_cfa_offset -8
    .cfi_restore rax
    popfq
    .cfi_adjust_cfa_offset -8
    ret     $128
    .cfi_endproc
    .size   tel__preempt_tramp, .-tel__preempt_tramp

    .section .note.GNU-stack, "", @progbits
