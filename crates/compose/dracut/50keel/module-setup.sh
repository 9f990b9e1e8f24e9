#!/bin/bash
# dracut module "keel": Keel's pieces of the initramfs.
# - /usr/bin/keel (the node-side binary);
# - keel-ignition-*.service: the first-boot provisioning stages, which run only when the kernel
#   command line has `ignition.firstboot`;
# - keel-prepare-root.service: mounts the chosen deployment as / with /usr read-only;
# - keel-ignition-generator: passes `ignition.platform.id=` to the stages as $PLATFORM;
# - keel-boot-failed.conf: emergency mode first reboots while the booted entry still has boot
#   tries (so boot counting falls back to the previous deployment), with efivarfs to read them;
# - the disk tools the `disks` stage runs.
# Installed into the tree at /usr/lib/dracut/modules.d/50keel by `keel compose`.

check() {
    require_binaries keel || return 1
    # Only when asked for (dracut --add keel).
    return 255
}

depends() {
    echo systemd
}

install() {
    inst_binary /usr/bin/keel
    inst_multiple -o sgdisk sfdisk wipefs blkid lsblk mkfs.ext4 mkfs.xfs mkfs.vfat mkfs.fat \
        mkswap cryptsetup mdadm udevadm chroot useradd usermod groupadd chpasswd
    hostonly='' instmods efivarfs
    inst_script "$moddir/keel-ignition-generator" "$systemdutildir/system-generators/keel-ignition-generator"
    local unit
    mkdir -p "${initdir}${systemdsystemunitdir}/initrd.target.wants"
    for unit in keel-ignition-fetch-offline keel-ignition-fetch keel-ignition-kargs \
        keel-ignition-disks keel-ignition-mount keel-ignition-files keel-ignition-umount \
        keel-prepare-root; do
        inst_simple "$moddir/$unit.service" "$systemdsystemunitdir/$unit.service"
        ln_r "$systemdsystemunitdir/$unit.service" "$systemdsystemunitdir/initrd.target.wants/$unit.service"
    done
    for unit in emergency dracut-emergency; do
        inst_simple "$moddir/keel-boot-failed.conf" "$systemdsystemunitdir/$unit.service.d/50-keel-boot-failed.conf"
    done
}
