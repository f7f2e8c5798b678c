#!/usr/bin/env bash
# Starts a transient libvirt domain that boots IMAGE (from make-boot-image.sh).
# Uses KVM when it works, TCG otherwise. Usage: start-vm.sh NAME IMAGE [VCPUS=1]
set -euo pipefail
name=${1:?usage: start-vm.sh NAME IMAGE [VCPUS]}
image=${2:?usage: start-vm.sh NAME IMAGE [VCPUS]}
vcpus=${3:-1}
xml_escape() { sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g'; }
domain_xml() {
  cat <<XML
<domain type='$1'>
  <name>$(printf '%s' "$name" | xml_escape)</name>
  <memory unit='MiB'>16</memory>
  <vcpu>$vcpus</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/><source file='$(printf '%s' "$image" | xml_escape)'/>
      <target dev='hda' bus='ide'/>
    </disk>
    <memballoon model='none'/>
  </devices>
</domain>
XML
}
xml=$(mktemp)
trap 'rm -f "$xml"' EXIT
# libvirt's qemu user must be able to read the image.
chmod a+rx "$(dirname "$(readlink -f "$image")")" 2>/dev/null || true
for type in kvm qemu; do
  [ "$type" = kvm ] && [ ! -w /dev/kvm ] && continue
  domain_xml "$type" > "$xml"
  if virsh -q -c qemu:///system create "$xml" >/dev/null 2>"$xml.err"; then
    echo "start-vm: $name running ($type, $vcpus vCPU)"
    rm -f "$xml.err"
    exit 0
  fi
  echo "start-vm: $type failed: $(cat "$xml.err")" >&2
done
rm -f "$xml.err"
exit 1
