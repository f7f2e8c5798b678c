#!/usr/bin/env bash
# Writes a 1 MiB raw disk whose boot sector is a tiny real-mode guest: it spins for BUSY
# outer rounds of a 65536-step loop, does one port write (out 0x80, a PIO exit) per round,
# then halts until the next timer tick (18.2 Hz) and starts over. No kernel, no download.
# Usage: make-boot-image.sh OUT.img [BUSY=64]   (BUSY 1..255; higher = busier vCPU 0)
set -euo pipefail
out=${1:?usage: make-boot-image.sh OUT.img [BUSY]}
busy=${2:-64}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/boot.S" <<'ASM'
.code16
.globl _start
_start:
  cli
  xor %ax, %ax
  mov %ax, %ss
  mov $0x7c00, %sp
  sti
round:
  mov $BUSY, %bl
spin:
  xor %cx, %cx
1:
  loop 1b
  out %al, $0x80
  dec %bl
  jnz spin
  hlt
  jmp round
.org 510
.byte 0x55, 0xaa
ASM
as --32 --defsym BUSY="$busy" -o "$work/boot.o" "$work/boot.S"
ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o "$work/boot.bin" "$work/boot.o"
cp "$work/boot.bin" "$out"
truncate -s 1M "$out"
chmod 0644 "$out"
