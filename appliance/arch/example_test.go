package arch_test

import (
	"fmt"
	"strings"

	"github.com/gosupermin/gosupermin/appliance/arch"
)

// The qemu command that boots an ext2 appliance of the tree's
// architecture, as the boot tests run it.
func ExampleArch_Args() {
	a, _ := arch.Lookup("aarch64") // dpkg, rpm, pacman, uname or Go names
	args := a.Args(arch.QemuArgs{Kernel: "OUT/kernel", Initrd: "OUT/initrd", Disks: []string{"OUT/root"},
		Append: "root=/dev/" + a.Qemu.DiskName})
	fmt.Println(a.Qemu.Binary, strings.Join(args, " "))
	// Output:
	// qemu-system-aarch64 -M virt -cpu max,pauth-impdef=on -accel tcg -m 1024 -no-reboot -display none -monitor none -serial stdio -nodefaults -kernel OUT/kernel -initrd OUT/initrd -append console=ttyAMA0 root=/dev/vda -drive file=OUT/root,format=raw,if=none,id=hd0 -device virtio-blk-pci,drive=hd0
}
