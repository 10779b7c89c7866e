/*
 * mps2.h — the few registers the QEMU MPS2 port touches (AN385 Cortex-M3 / AN500 Cortex-M7 boards share them):
 * CMSDK APB UART0, SysTick, NVIC, SCB; plus the port's set-up and semihosting entry points.
 */
#ifndef LEGLOOP_MPS2_H
#define LEGLOOP_MPS2_H

#include <stdint.h>

#define REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

/* CMSDK APB UART0 */
#define UART0_BASE 0x40004000u
#define UART0_DATA REG32(UART0_BASE + 0x00u)
#define UART0_STATE REG32(UART0_BASE + 0x04u) /* bit0 TX full, bit1 RX full */
#define UART0_CTRL REG32(UART0_BASE + 0x08u)  /* bit0 TX en, bit1 RX en, bit3 RX int en */
#define UART0_INTCLR REG32(UART0_BASE + 0x0Cu) /* write 1 to clear: bit0 TX, bit1 RX */
#define UART0_BAUDDIV REG32(UART0_BASE + 0x10u)
#define UART_STATE_TXFULL 0x1u
#define UART_STATE_RXFULL 0x2u
#define UART_CTRL_TXEN 0x1u
#define UART_CTRL_RXEN 0x2u
#define UART_CTRL_RXINTEN 0x8u
#define UART_INT_RX 0x2u
#define UART0_RX_IRQ 0u

/* SysTick */
#define SYST_CSR REG32(0xE000E010u) /* bit0 enable, bit1 tick interrupt, bit2 processor clock */
#define SYST_RVR REG32(0xE000E014u)
#define SYST_CVR REG32(0xE000E018u)

/* NVIC, SCB */
#define NVIC_ISER0 REG32(0xE000E100u)
#define SCB_ICSR REG32(0xE000ED04u)
#define ICSR_PENDSTSET (1u << 26)

/* The MPS2 FPGA images clock the CPU and the APB peripherals at 25 MHz (QEMU's SYSCLK_FRQ). */
#define MPS2_SYSCLK_HZ 25000000u

/* hal_mps2.c */
void board_init(void);

/* semihost.c: only with `qemu-system-arm -semihosting-config enable=on,target=native` */
void semihost_exit(int code);
void semihost_puts(const char *s); /* debug console (SYS_WRITE0) */

#endif /* LEGLOOP_MPS2_H */
