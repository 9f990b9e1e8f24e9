#!/bin/bash
# dracut module "keel": Keel's pieces of the initramfs.
# - /usr/bin/keel (the node-side binary);
# - keel-ignition-*.service: the first-boot provisioning stages, which run only when the kernel
#   command line has `ignition.firstboot`;
# - keel-prepare-root.service: mounts the chosen deployment as / with /usr read-only;
# - keel-ignition-generator: passes `ignition.platform.id=` to the stages as $PLATFORM;
# - keel-boot-failed.conf: emergency mode first reboots while the booted entry still has boot
#   tries (so boot counting falls back to the previous deployment), with efivarfs to read them;
# - the disk tools the `disks` stage runs, with what mdadm and cryptsetup need in the initramfs:
#   dracut's `dm` module (every md/dm driver incl. raid1 and dm_crypt, dmsetup, and the dm udev
#   rules that create /dev/mapper/<name> and answer libdevmapper's udev cookies) and the md rule
#   that links /dev/md/<name>.
# - the network, only for a config that needs it: dracut's systemd-networkd module with its
#   units left disabled, 90-keel-initrd-dhcp.network, and keel-initrd-network.service, which
#   starts networkd between fetch-offline and fetch when fetch-offline flagged /run/ignition/neednet;
# Installed into the tree at /usr/lib/dracut/modules.d/50keel by `keel compose`.

check() {
    require_binaries keel || return 1
    # Only when asked for (dracut --add keel).
    return 255
}

depends() {
    echo systemd dm systemd-networkd
}

install() {
    inst_binary /usr/bin/keel
    inst_multiple -o sgdisk sfdisk wipefs blkid lsblk mkfs.ext4 mkfs.xfs mkfs.vfat mkfs.fat \
        mkswap cryptsetup mdadm udevadm chroot useradd usermod groupadd chpasswd
    inst_rules 63-md-raid-arrays.rules
    hostonly='' instmods efivarfs
    inst_script "$moddir/keel-ignition-generator" "$systemdutildir/system-generators/keel-ignition-generator"
    local unit
    mkdir -p "${initdir}${systemdsystemunitdir}/initrd.target.wants"
    # systemd-networkd's module enables networkd on every boot; Keel starts it only on demand.
    $SYSTEMCTL -q --root "$initdir" disable systemd-networkd.service systemd-networkd.socket \
        systemd-network-generator.service systemd-networkd-wait-online.service
    inst_simple "$moddir/90-keel-initrd-dhcp.network" "$systemdnetwork/90-keel-initrd-dhcp.network"
    for unit in keel-ignition-fetch-offline keel-initrd-network keel-ignition-fetch keel-ignition-kargs \
        keel-ignition-disks keel-ignition-mount keel-ignition-files keel-ignition-umount \
        keel-prepare-root; do
        inst_simple "$moddir/$unit.service" "$systemdsystemunitdir/$unit.service"
        ln_r "$systemdsystemunitdir/$unit.service" "$systemdsystemunitdir/initrd.target.wants/$unit.service"
    done
    for unit in emergency dracut-emergency; do
        inst_simple "$moddir/keel-boot-failed.conf" "$systemdsystemunitdir/$unit.service.d/50-keel-boot-failed.conf"
    done
}
