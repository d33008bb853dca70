#!/usr/bin/env bash
# Builds the two Debian packages from built binaries and the policy files:
#   secureconsult-kiosk        the kiosk, policy/linux (units, logind, udev, sysctl), the kiosk user
#   secureconsult-care-server  the care server, its unit, its user, the production config
# Usage: installer/build-deb.sh BIN_DIR OUT_DIR [VERSION]
#   BIN_DIR holds secureconsult-kiosk, secureconsult-decode and care-server (scripts/package.sh builds them in release).
# Plain dpkg-deb from a staged tree: every file the packages carry is listed here.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
bin_dir="$1"
out_dir="$2"
version="${3:-$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)}"
arch="$(dpkg --print-architecture)"
mkdir -p "$out_dir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Installs FILE at PATH inside the staged tree STAGE with MODE.
put() {
  local stage="$1" mode="$2" file="$3" path="$4"
  install -D -m "$mode" "$file" "$stage$path"
}

# The library packages a binary needs, from dpkg's own shlibs data.
shlib_depends() {
  local dir
  dir="$(mktemp -d)"
  mkdir -p "$dir/debian"
  printf 'Source: x\n\nPackage: x\nArchitecture: any\n' >"$dir/debian/control"
  (cd "$dir" && dpkg-shlibdeps -O "${@/#/-e}" 2>/dev/null) | sed -n 's/^shlibs:Depends=//p'
  rm -rf "$dir"
}

# The parts every Debian package carries: copyright, changelog, md5sums, control.
finish() {
  local stage="$1" name="$2" depends="$3" description="$4"
  local doc="$stage/usr/share/doc/$name"
  install -D -m 0644 "$here/copyright" "$doc/copyright"
  printf '%s (%s) unstable; urgency=medium\n\n  * Release %s.\n\n -- SecureConsult <packages@secureconsult.invalid>  %s\n' \
    "$name" "$version" "$version" "$(date -R -d @"${SOURCE_DATE_EPOCH:-0}")" | gzip -9n >"$doc/changelog.gz"
  chmod 0644 "$doc/changelog.gz"
  local size
  size="$(du -k -s --exclude=DEBIAN "$stage" | cut -f1)"
  mkdir -p "$stage/DEBIAN"
  (cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
  chmod 0644 "$stage/DEBIAN/md5sums"
  cat >"$stage/DEBIAN/control" <<CONTROL
Package: $name
Version: $version
Architecture: $arch
Maintainer: SecureConsult <packages@secureconsult.invalid>
Installed-Size: $size
Depends: $depends
Section: net
Priority: optional
Homepage: https://secureconsult.invalid/
Description: $description
CONTROL
  cat "$here/$name.description" >>"$stage/DEBIAN/control"
  for script in postinst prerm postrm; do
    if [ -f "$here/$name.$script" ]; then
      install -m 0755 "$here/$name.$script" "$stage/DEBIAN/$script"
    fi
  done
  if [ -f "$here/$name.conffiles" ]; then
    install -m 0644 "$here/$name.conffiles" "$stage/DEBIAN/conffiles"
  fi
  find "$stage" -type d -exec chmod 0755 {} +
  dpkg-deb --root-owner-group --build "$stage" "$out_dir/${name}_${version}_${arch}.deb" >/dev/null
  echo "$out_dir/${name}_${version}_${arch}.deb"
}

# The kiosk.
k="$work/kiosk"
strip --strip-unneeded -o "$work/secureconsult-kiosk" "$bin_dir/secureconsult-kiosk"
put "$k" 0755 "$work/secureconsult-kiosk" /usr/bin/secureconsult-kiosk
# The decode helper the kiosk runs for each shared image (crates/sandbox); not for people to run.
strip --strip-unneeded -o "$work/secureconsult-decode" "$bin_dir/secureconsult-decode"
put "$k" 0755 "$work/secureconsult-decode" /usr/lib/secureconsult/secureconsult-decode
for unit in "$root"/policy/linux/systemd/*; do
  put "$k" 0644 "$unit" "/lib/systemd/system/$(basename "$unit")"
done
put "$k" 0644 "$root/policy/linux/logind/secureconsult.conf" /etc/systemd/logind.conf.d/secureconsult.conf
put "$k" 0644 "$root/policy/linux/udev/90-secureconsult-usb.rules" /lib/udev/rules.d/90-secureconsult-usb.rules
put "$k" 0644 "$root/policy/linux/sysctl/90-secureconsult.conf" /usr/lib/sysctl.d/90-secureconsult.conf
put "$k" 0755 "$root/policy/linux/bin/secureconsult-session" /usr/lib/secureconsult/secureconsult-session
put "$k" 0755 "$root/policy/linux/bin/secureconsult-admin" /usr/sbin/secureconsult-admin
put "$k" 0644 "$here/kiosk/secureconsult-admin.8" /usr/share/man/man8/secureconsult-admin.8
gzip -9n "$k/usr/share/man/man8/secureconsult-admin.8"
put "$k" 0644 "$here/kiosk/session-only" /etc/secureconsult/session-only
put "$k" 0644 "$here/kiosk/secureconsult-kiosk.1" /usr/share/man/man1/secureconsult-kiosk.1
gzip -9n "$k/usr/share/man/man1/secureconsult-kiosk.1"
kiosk_libs="$(shlib_depends "$work/secureconsult-kiosk" "$work/secureconsult-decode")"
finish "$k" secureconsult-kiosk \
  "${kiosk_libs:+$kiosk_libs, }passwd, cage, xwayland, nftables, dbus-user-session, dbus-daemon, dbus-bin, gnome-keyring, systemd, udev" \
  "prison telemedicine kiosk, locked down"

# The care server.
c="$work/care"
strip --strip-unneeded -o "$work/care-server" "$bin_dir/care-server"
put "$c" 0755 "$work/care-server" /usr/bin/care-server
put "$c" 0644 "$here/care-server/secureconsult-care.service" /lib/systemd/system/secureconsult-care.service
put "$c" 0644 "$here/care-server/care-server.toml" /etc/secureconsult/care-server.toml
put "$c" 0644 "$here/care-server/care-server.1" /usr/share/man/man1/care-server.1
gzip -9n "$c/usr/share/man/man1/care-server.1"
care_libs="$(shlib_depends "$work/care-server")"
finish "$c" secureconsult-care-server "${care_libs:+$care_libs, }passwd, coturn, systemd" \
  "prison telemedicine care server"
