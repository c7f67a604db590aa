#!/bin/bash
# axoha dracut module (installed to /usr/lib/dracut/modules.d/90axoha/).
# Included only when asked: the builder runs dracut with --add "systemd-veritysetup axoha".

# Not included by default (255 = only when --add'ed), like systemd-veritysetup.
check() {
    return 255
}

depends() {
    echo systemd systemd-veritysetup
    return 0
}

install() {
    local unit
    # The binaries the units run. dracut's inst resolves their shared libraries.
    inst_multiple /usr/bin/axoha-update sh sleep
    for unit in axoha-initrd-deadline.service axoha-prepare-root.service; do
        inst_simple "$moddir/$unit" "$systemdsystemunitdir/$unit"
        mkdir -p "${initdir}${systemdsystemunitdir}/initrd.target.wants"
        ln_r "$systemdsystemunitdir/$unit" "$systemdsystemunitdir/initrd.target.wants/$unit"
    done
}
