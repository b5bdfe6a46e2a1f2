/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed inputs of the x86 engine's fuzz target (fuzz_x86.c) into
 * the directory given: the 12-byte header (configuration, register
 * selectors, flags, salt) and a short instruction sequence assembled into
 * this program (SEED blobs), one file per sequence, each at most 512 bytes.
 * The sequences reach what random bytes rarely do: string instructions
 * over page boundaries, port and MMIO I/O, control-register writes, the
 * read-only slot, a conversion by KVM_HC_MAP_GPA_RANGE, SYSCALL and
 * SYSENTER refused, SSE, self-modifying code, a triple fault. The seeds
 * are committed in tests/fuzz/corpus/x86/ (seed-*); rerun after changing
 * the format:
 *   cc -o /tmp/gen tests/fuzz/gen_x86_seeds.c && /tmp/gen tests/fuzz/corpus/x86
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* fuzz_x86.c's header and layout. */
enum { CFG_SW = 1, CFG_CONVERT = 2, CFG_PRIVATE = 4, CFG_IRQCHIP = 8 };
/* Register selectors (seed_value's cases). */
enum { V_0, V_1, V_ONES, V_DATA, V_DATA_CROSS, V_CANARY, V_MMIO, V_MSB, V_MAX, V_UNMAPPED,
       V_NONCANON, V_SALT, V_RANDOM, V_2G, V_CODE, V_HIGH };
enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15 };

#define SEED(name, body)                                                       \
	extern const char name[], name##_end[];                                \
	__asm__(".pushsection .text\n" #name ":\n" body "\n" #name "_end:\n.popsection\n")

/* ---- integer ---- */
SEED(alu_chain,
     "add %rcx, %rax\n adc %rdx, %rbx\n sub %rsi, %rdi\n sbb %r8, %r9\n cmp %r10, %r11\n"
     "inc %r12\n dec %r13d\n neg %r14w\n not %r15b\n and %rax, %rbx\n or %ecx, %edx\n"
     "xor %sil, %dil\n test %r8, %r9\n cmovz %rax, %rcx\n setb %dl\n xchg %rbx, %rdx\n"
     "bswap %r10\n movzx %al, %r11d\n movsx %cx, %r12\n movsxd %edx, %r13\n lea 8(%rax,%rbx,4), %r14\n"
     "xadd %rcx, %rdx\n cqo\n cdqe\n cwd\n cbw\n stc\n cmc\n adc $0x7f, %al\n sbb $-1, %r9\n");
SEED(alu_flags,
     "mov $0x7fffffffffffffff, %rax\n add $1, %rax\n seto %bl\n sets %cl\n setp %dl\n"
     "sub $1, %rax\n setnz %sil\n setbe %dil\n setl %r8b\n setle %r9b\n"
     "mov $0x80, %al\n add %al, %al\n cmovc %rbx, %r10\n cmovo %rcx, %r11\n cmovp %rdx, %r12\n"
     "popcnt %r13, %r14\n inc %r15\n");
SEED(mul_div,
     "mov $7, %ecx\n mul %rcx\n imul $-3, %rdx, %rbx\n imul %rcx\n xor %edx, %edx\n"
     "mov $100, %eax\n div %rcx\n mov $-100, %rax\n cqo\n idiv %rcx\n xor %ecx, %ecx\n div %rcx\n");
SEED(shifts_bits,
     "mov $5, %cl\n shl %cl, %rax\n sar $3, %rbx\n shr %rdx\n rol $7, %rsi\n ror %cl, %edi\n"
     "rcl $1, %r8\n rcr %cl, %r9\n shld $4, %r10, %r11\n shrd %cl, %r12, %r13\n"
     "bt $3, %r14\n bts %rax, %r15\n btr $63, %rbx\n btc %rcx, %rdx\n bsf %rsi, %rdi\n"
     "bsr %r8, %r9\n tzcnt %r10, %r11\n lzcnt %r12, %r13\n");
/* ---- memory ---- */
SEED(loads_stores,
     "mov (%rbx), %rax\n mov %rcx, 8(%rbx)\n movb $1, 16(%rbx)\n addq $5, 24(%rbx)\n"
     "lock xaddq %rdx, 32(%rbx)\n lock cmpxchgq %rsi, 40(%rbx)\n xchg %rdi, 48(%rbx)\n"
     "movw 0xffd(%rbx), %r8w\n movq %r9, 0xffc(%rbx)\n lock incl 0xffe(%rbx)\n"
     "push %rax\n push (%rbx)\n pop %r10\n pop 56(%rbx)\n pushfq\n popfq\n"
     "cmpxchg16b 64(%rbx)\n cmpxchg8b 80(%rbx)\n");
SEED(string_ops,
     "cld\n mov $64, %ecx\n rep movsb\n mov $9, %ecx\n rep stosq\n mov $5, %ecx\n repe cmpsb\n"
     "mov $300, %ecx\n repne scasw\n std\n mov $3, %ecx\n rep movsq\n cld\n lodsq\n stosl\n"
     "mov $0x2000, %ecx\n rep stosb\n");
SEED(string_cross_page,
     "mov $0x100ff8, %rdi\n mov $0x101ff0, %rsi\n mov $40, %ecx\n rep movsb\n"
     "mov $0x1ffffc, %rdi\n mov $2, %ecx\n rep stosl\n");
SEED(canary_writes,
     "mov $0x200000, %rdi\n movq $0, (%rdi)\n movl $-1, 0xff0(%rdi)\n mov $16, %ecx\n"
     "rep stosq\n lock orq $1, 8(%rdi)\n mov (%rdi), %rax\n xchg %rax, 0x1000(%rdi)\n"
     "mov $0x20fffc, %rdi\n movq $5, (%rdi)\n");
SEED(mmio,
     "mov $0x300000, %rbx\n mov (%rbx), %rax\n movl $0x12345678, 4(%rbx)\n movw 6(%rbx), %cx\n"
     "movq $-1, 0xffc(%rbx)\n lock addq $1, 16(%rbx)\n mov $4, %ecx\n mov %rbx, %rdi\n"
     "rep stosq\n mov 0xff9(%rbx), %rdx\n");
SEED(page_faults,
     "mov $0x40000000, %rax\n mov (%rax), %rbx\n movq $1, (%rax)\n mov $0x800000000000, %rcx\n"
     "mov (%rcx), %rdx\n jmp *%rax\n");
SEED(paging_edit,
     "mov %cr3, %rax\n mov %rax, %cr3\n mov (%rax), %rbx\n andq $-3, (%rax)\n invlpg (%rdx)\n"
     "mov %cr3, %rax\n mov %rax, %cr3\n movq $0, 0x100000\n orq $2, (%rax)\n mov %rax, %cr3\n");
/* ---- system ---- */
SEED(cr_writes,
     "mov %cr0, %rax\n mov %rax, %cr0\n mov %cr4, %rbx\n or $0x80, %rbx\n mov %rbx, %cr4\n"
     "mov %cr4, %rcx\n btr $5, %rcx\n mov %rcx, %cr4\n mov %cr0, %rdx\n btr $31, %rdx\n mov %rdx, %cr0\n"
     "mov %cr2, %rsi\n mov %rsi, %cr8\n mov %dr7, %rdi\n clts\n smsw %ax\n");
SEED(msrs_cpuid,
     "xor %eax, %eax\n cpuid\n mov $1, %eax\n cpuid\n mov $0x80000008, %eax\n cpuid\n"
     "mov $0xc0000080, %ecx\n rdmsr\n wrmsr\n mov $0x10, %ecx\n rdmsr\n wrmsr\n"
     "mov $0x12345, %ecx\n rdmsr\n rdtsc\n rdtscp\n rdpid %rax\n");
SEED(port_io,
     "mov $0x3f8, %dx\n mov $0x41, %al\n out %al, %dx\n in %dx, %al\n in $0x60, %eax\n"
     "outw %ax, $0x80\n mov $0x100000, %rsi\n mov $3, %ecx\n rep outsb\n mov $0x100100, %rdi\n"
     "mov $700, %ecx\n rep insw\n mov $2, %ecx\n rep insl\n");
SEED(hlt_nop,
     "hlt\n nop\n pause\n hlt\n");
SEED(syscall_refused,
     "syscall\n sysenter\n sysretl\n sysexitl\n");
SEED(syscall_set_up,
     "mov $0xc0000080, %ecx\n rdmsr\n or $1, %eax\n wrmsr\n mov $0xc0000082, %ecx\n"
     "mov $0x20100, %eax\n xor %edx, %edx\n wrmsr\n mov $0xc0000081, %ecx\n xor %eax, %eax\n"
     "mov $0x00100008, %edx\n wrmsr\n syscall\n");
SEED(exceptions,
     "int3\n ud2\n int $0x80\n .byte 0xce\n xor %ecx, %ecx\n div %ecx\n int1\n .byte 0x0f, 0x0b\n");
SEED(descriptors,
     "sgdt 0x100000\n sidt 0x100010\n lgdt 0x100000\n lidt 0x100010\n str %ax\n sldt %bx\n"
     "mov $0x10, %eax\n mov %eax, %ds\n mov %eax, %es\n mov %ss, %ecx\n mov %ecx, %ss\n"
     "mov $0x18, %eax\n ltr %ax\n lldt %ax\n mov $0x33, %eax\n mov %eax, %fs\n");
SEED(iret_far,
     "mov %ss, %eax\n push %rax\n push %rsp\n pushfq\n push $0x8\n lea 1f(%rip), %rax\n push %rax\n"
     "iretq\n 1: push $0x8\n lea 2f(%rip), %rax\n push %rax\n lretq\n 2: ljmp *(%rbx)\n");
SEED(triple_fault,
     "lidt 0x100000\n movq $0, 0x100000\n movq $0, 0x100008\n lidt 0x100000\n ud2\n");
SEED(fsgs,
     "wrfsbase %rax\n wrgsbase %rbx\n rdfsbase %rcx\n rdgsbase %rdx\n swapgs\n"
     "mov %fs:8, %rsi\n mov %rsi, %gs:16\n swapgs\n");
SEED(hypercall_convert,
     "mov $12, %eax\n mov $0x100000, %ebx\n mov $4, %ecx\n mov $0x10, %edx\n vmcall\n"
     "mov 0x100000, %rsi\n movq $7, 0x101000\n mov $12, %eax\n mov $0x100000, %ebx\n mov $2, %ecx\n"
     "xor %edx, %edx\n vmcall\n mov 0x100000, %rdi\n mov $1, %eax\n vmmcall\n");
SEED(code_convert,
     "mov $12, %eax\n mov $0x20000, %ebx\n mov $1, %ecx\n mov $0x10, %edx\n vmcall\n nop\n nop\n");
SEED(self_modify,
     "lea 1f(%rip), %rax\n movb $0x90, (%rax)\n movb $0x90, 1(%rax)\n 1: ud2\n"
     "lea 2f(%rip), %rbx\n movl $0x90909090, (%rbx)\n 2: int3\n int3\n int3\n int3\n");
SEED(loops,
     "mov $1000, %ecx\n 1: add %rcx, %rax\n loop 1b\n mov $50, %edx\n 2: dec %edx\n jnz 2b\n"
     "xor %ecx, %ecx\n jrcxz 3f\n ud2\n 3: call 4f\n ud2\n 4: pop %rax\n enter $16, $0\n leave\n");
SEED(spin, "1: jmp 1b\n");
SEED(sse,
     "movq %rax, %xmm0\n movq %rbx, %xmm1\n paddq %xmm1, %xmm0\n pshufd $0x1b, %xmm0, %xmm2\n"
     "movdqu (%rdx), %xmm3\n movups %xmm3, 16(%rdx)\n addps %xmm0, %xmm1\n sqrtsd %xmm2, %xmm3\n"
     "cvtsi2sd %rcx, %xmm4\n cvttsd2si %xmm4, %rsi\n ucomisd %xmm4, %xmm3\n pcmpeqb %xmm0, %xmm1\n"
     "pmovmskb %xmm1, %edi\n stmxcsr 32(%rdx)\n ldmxcsr 32(%rdx)\n fxsave (%rdx)\n fxrstor (%rdx)\n"
     "roundsd $1, %xmm3, %xmm5\n haddps %xmm1, %xmm2\n dpps $0xff, %xmm0, %xmm1\n movmskpd %xmm5, %ebp\n");
SEED(unsupported,
     "fld1\n emms\n vaddps %ymm0, %ymm1, %ymm2\n andn %rax, %rbx, %rcx\n crc32 %al, %ecx\n"
     "aesenc %xmm0, %xmm1\n xsave (%rdx)\n monitor\n pcmpestri $0, %xmm0, %xmm1\n");
SEED(user_mode,
     "push $0x23\n push $0x1000\n pushfq\n push $0x2b\n lea 1f(%rip), %rax\n push %rax\n iretq\n"
     "1: nop\n");
SEED(cache_misc,
     "clflush (%rdx)\n wbinvd\n lfence\n mfence\n sfence\n prefetchw (%rdx)\n cli\n sti\n"
     "cld\n std\n lahf\n sahf\n xlat\n");

struct seed {
	const char *name;
	const char *start, *end;
	unsigned char cfg;
	unsigned char sel[16];  /* by register; RSP's ignored */
	unsigned char flags;
	unsigned short salt;
};

#define S(n, c, ...) { #n, n, n##_end, c, __VA_ARGS__ }

/* Default selectors: RBX, RDX, RSI and RDI point into the data area. */
#define DATA_REGS { V_RANDOM, V_SALT, V_DATA, V_DATA, 0, V_ONES, V_DATA, V_DATA, V_MSB, V_MAX, \
		    V_HIGH, V_1, V_2G, V_NONCANON, V_CODE, V_0 }

static const struct seed seeds[] = {
	S(alu_chain, 0, { V_RANDOM, V_SALT, V_ONES, V_MSB, 0, V_MAX, V_HIGH, V_1, V_RANDOM, V_0,
			  V_2G, V_SALT, V_ONES, V_MSB, V_RANDOM, V_HIGH }, 0x15, 0x1234),
	S(alu_flags, 0, DATA_REGS, 0x2a, 0xbeef),
	S(mul_div, 0, DATA_REGS, 0, 7),
	S(shifts_bits, 0, DATA_REGS, 0x41, 0x8001),
	S(loads_stores, 0, DATA_REGS, 0, 0x40),
	S(loads_stores, CFG_SW | CFG_CONVERT | CFG_PRIVATE, DATA_REGS, 0, 0x40),
	S(string_ops, 0, DATA_REGS, 0, 0x100),
	S(string_ops, CFG_SW | CFG_PRIVATE, DATA_REGS, 0x40, 0x200),
	S(string_cross_page, CFG_SW | CFG_CONVERT | CFG_PRIVATE, DATA_REGS, 0, 0),
	S(canary_writes, 0, DATA_REGS, 0, 0),
	S(canary_writes, CFG_SW | CFG_CONVERT, DATA_REGS, 0, 0),
	S(mmio, 0, DATA_REGS, 0, 0),
	S(page_faults, 0, DATA_REGS, 0, 0),
	S(paging_edit, 0, { V_0, V_0, V_DATA, V_0, 0, V_0, V_0, V_0, V_0, V_0, V_0, V_0, V_0, V_0,
			    V_0, V_0 }, 0, 0x1000),
	S(cr_writes, 0, DATA_REGS, 0, 0),
	S(msrs_cpuid, 0, DATA_REGS, 0, 0),
	S(port_io, 0, DATA_REGS, 0, 0),
	S(hlt_nop, 0, DATA_REGS, 0, 0),
	S(hlt_nop, CFG_IRQCHIP, DATA_REGS, 0, 0),
	S(syscall_refused, 0, DATA_REGS, 0, 0),
	S(syscall_set_up, 0, DATA_REGS, 0, 0),
	S(exceptions, 0, DATA_REGS, 0, 0),
	S(descriptors, 0, DATA_REGS, 0, 0),
	S(iret_far, 0, { V_0, V_0, V_0, V_DATA, 0, V_0, V_0, V_0, V_0, V_0, V_0, V_0, V_0, V_0,
			 V_0, V_0 }, 0, 0),
	S(triple_fault, 0, DATA_REGS, 0, 0),
	S(fsgs, 0, { V_DATA, V_DATA, V_0, V_0, 0, V_0, V_0, V_0, V_0, V_0, V_0, V_0, V_0, V_0,
		     V_0, V_0 }, 0, 0x10),
	S(hypercall_convert, CFG_SW | CFG_CONVERT, DATA_REGS, 0, 0),
	S(hypercall_convert, CFG_SW, DATA_REGS, 0, 0),
	S(hypercall_convert, 0, DATA_REGS, 0, 0),
	S(code_convert, CFG_SW | CFG_CONVERT, DATA_REGS, 0, 0),
	S(self_modify, 0, DATA_REGS, 0, 0),
	S(loops, 0, DATA_REGS, 0, 0),
	S(spin, 0, DATA_REGS, 0, 0),
	S(sse, 0, DATA_REGS, 0, 0x80),
	S(unsupported, 0, DATA_REGS, 0, 0),
	S(user_mode, 0, DATA_REGS, 0, 0),
	S(cache_misc, 0, DATA_REGS, 0x7f, 0x10),
};

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		const struct seed *s = &seeds[i];
		size_t len = (size_t)(s->end - s->start);
		unsigned char hdr[12] = { s->cfg };
		char path[4096];
		FILE *f;

		if (len + sizeof(hdr) > 512) {
			fprintf(stderr, "%s: %zu bytes, more than 512\n", s->name, len + sizeof(hdr));
			return 1;
		}
		for (int r = 0; r < 16; r++)
			hdr[1 + r / 2] |= (unsigned char)((s->sel[r] & 15) << (4 * (r & 1)));
		hdr[9] = s->flags;
		hdr[10] = (unsigned char)s->salt;
		hdr[11] = (unsigned char)(s->salt >> 8);
		snprintf(path, sizeof(path), "%s/seed-%s%s%s%s%s", argv[1], s->name,
			 (s->cfg & CFG_SW) ? "-sw" : "", (s->cfg & CFG_CONVERT) ? "-convert" : "",
			 (s->cfg & CFG_PRIVATE) ? "-private" : "", (s->cfg & CFG_IRQCHIP) ? "-irqchip" : "");
		f = fopen(path, "wb");
		if (!f || fwrite(hdr, 1, sizeof(hdr), f) != sizeof(hdr) ||
		    fwrite(s->start, 1, len, f) != len || fclose(f)) {
			perror(path);
			return 1;
		}
	}
	return 0;
}
