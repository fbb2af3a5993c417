# bash completion for gosupermin(1); generated from cmd/gosupermin/docs.go by "make man".
_gosupermin() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	COMPREPLY=()
	case $prev in
	-f|--format)
		COMPREPLY=($(compgen -W 'chroot ext2 cpio fs filesystem' -- "$cur"))
		return ;;
	--kernel-format)
		COMPREPLY=($(compgen -W 'auto elf image' -- "$cur"))
		return ;;
	--compress)
		COMPREPLY=($(compgen -W 'zstd gzip none' -- "$cur"))
		return ;;
	--accel)
		COMPREPLY=($(compgen -W 'auto kvm tcg' -- "$cur"))
		return ;;
	-o|--root|--share|--share-ro)
		COMPREPLY=($(compgen -d -- "$cur"))
		return ;;
	--init|--lock|--sbom|--packager-config)
		COMPREPLY=($(compgen -f -- "$cur"))
		return ;;
	--size|--host-cpu|--memory|--smp|--timeout|--dtb)
		return ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W '--accel --build --compress --copy-kernel --dtb --firstboot --format --help --host-cpu --if-newer --include-packagelist --init --kernel-format --list-drivers --lock --memory --packager-config --persist --prepare --root --run --sbom --share --share-ro --size --smp --timeout --use-installed --verbose --version -V -f -h -o -v' -- "$cur"))
		return
	fi
	# Inputs of --build and outputs are files and directories.
	COMPREPLY=($(compgen -f -- "$cur"))
}
complete -o filenames -F _gosupermin gosupermin
