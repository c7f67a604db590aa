#!/bin/bash
# axoha dracut module, installed to /usr/lib/dracut/modules.d/90axoha/. The builder runs
# dracut with --add "systemd-veritysetup axoha" (see the spec, "initrd").
#
# Units (both initrd only, both wanted by initrd.target):
#   axoha-initrd-deadline.service  reboots when switch-root has not happened in time
#   axoha-prepare-root.service     axoha-update prepare-root /sysroot
# dracut sources this file with $moddir, $initdir and $systemdsystemunitdir set.

# Only when asked for with --add (255), like systemd-veritysetup: a host's own initrd
# (dracut run by a kernel package) must not get a deadline that reboots it.
check() {
    return 255
}

# systemd: the units are systemd units. systemd-veritysetup: /usr comes from usrhash=
# (systemd-veritysetup-generator); without it there is no /sysroot/usr to prepare.
depends() {
    echo systemd systemd-veritysetup
    return 0
}

install() {
    local unit
    # What the units run. inst_multiple resolves each binary's shared libraries; sh
    # (00bash/00dash) and sleep (99base) are in every dracut initrd, named here so that
    # the deadline unit does not rest on another module's list.
    inst_multiple /usr/bin/axoha-update sh sleep
    mkdir -p "${initdir}${systemdsystemunitdir}/initrd.target.wants"
    for unit in axoha-initrd-deadline.service axoha-prepare-root.service; do
        inst_simple "$moddir/$unit" "$systemdsystemunitdir/$unit"
        # Enabled for initrd.target, as a plain relative symlink (what `systemctl add-wants`
        # would make, without running the build host's systemctl on the initrd tree).
        ln -sfn "../$unit" "${initdir}${systemdsystemunitdir}/initrd.target.wants/$unit"
    done
}
