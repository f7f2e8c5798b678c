#!/usr/bin/env bash
# Builds the Debian package kvmprof-agent_<version>_<arch>.deb with dpkg-deb from the agent
# already built in BUILD_DIR (it runs deploy/build.sh when that binary is missing).
#
#   deploy/package.sh [BUILD_DIR] [OUT_DIR]      # both default to build/
#   apt install ./build/kvmprof-agent_*.deb
#
# The version is the binary's own (`kvmprof-agent --version`, from CMake's project VERSION).
# Contents: /usr/sbin/kvmprof-agent (stripped), the unit deploy/kvmprof-agent.service in
# /lib/systemd/system, config/agent.yaml as the conffile /etc/kvmprof/agent.yaml, a man page
# made from --help, and in /usr/share/doc/kvmprof-agent the copyright, changelog.gz, README
# and the Prometheus/Parca/Pyroscope examples. Control files and maintainer scripts come from
# deploy/debian/; Depends from dpkg-shlibdeps. Needs dpkg-dev, binutils and python3 (lintian
# to check the result). Maintainer: $DEBFULLNAME <$DEBEMAIL> when set. Reproducible: every
# timestamp is SOURCE_DATE_EPOCH, by default the binary's mtime.
set -euo pipefail
umask 022

top=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath -m "${1:-$top/build}")
out=$(realpath -m "${2:-$top/build}")
pkg=kvmprof-agent
deb_dir=$top/deploy/debian
agent=$build/agent/kvmprof-agent

die() { echo "package: $*" >&2; exit 1; }

for tool in dpkg-deb dpkg-shlibdeps strip gzip python3; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install dpkg-dev binutils gzip python3)"
done
if [ ! -x "$agent" ]; then
  echo "package: $agent does not exist; building it"
  BUILD_DIR=$build bash "$top/deploy/build.sh"
fi

# The binary is what gets packaged, so its version names the package. CMakeLists.txt's
# project(VERSION) is what it was compiled from; a difference means a stale build directory.
version=$("$agent" --version | awk 'NR == 1 { print $2 }')
[[ $version =~ ^[0-9][A-Za-z0-9.+~]*$ ]] || die "cannot read a version from '$agent --version': '$version'"
cmake_version=$(sed -nE 's/^project\(kvmprof VERSION ([^ )]+).*/\1/p' "$top/CMakeLists.txt")
if [ -n "$cmake_version" ] && [ "$cmake_version" != "$version" ]; then
  echo "package: warning: $agent is version $version but CMakeLists.txt says $cmake_version (stale build?)" >&2
fi
arch=$(dpkg --print-architecture)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(stat -c %Y "$agent")}
maintainer="${DEBFULLNAME:-kvmprof developers} <${DEBEMAIL:-kvmprof@example.org}>"
deb=$out/${pkg}_${version}_${arch}.deb

work=$(mktemp -d "${TMPDIR:-/tmp}/kvmprof-package.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/debian/$pkg  # the layout dpkg-shlibdeps expects (debian/control next to it)
doc=$root/usr/share/doc/$pkg

install -d "$root/DEBIAN" "$root/usr/sbin" "$root/lib/systemd/system" "$root/etc/kvmprof" \
  "$root/usr/share/man/man8" "$doc/examples"

# Stripped as dh_strip strips an executable; the unstripped binary stays in BUILD_DIR.
strip --remove-section=.comment --remove-section=.note -o "$root/usr/sbin/kvmprof-agent" "$agent"
chmod 0755 "$root/usr/sbin/kvmprof-agent"
install -m 0644 "$top/deploy/kvmprof-agent.service" "$root/lib/systemd/system/kvmprof-agent.service"
install -m 0644 "$top/config/agent.yaml" "$root/etc/kvmprof/agent.yaml"

"$agent" --help | python3 "$deb_dir/help2man.py" "$version" "$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)" \
  | gzip -9n >"$root/usr/share/man/man8/kvmprof-agent.8.gz"
sed "s|@YEAR@|$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y)|g" "$deb_dir/copyright.in" >"$doc/copyright"
# A native package (the version has no Debian revision): its changelog is changelog.gz.
sed -e "s|@VERSION@|$version|g" -e "s|@MAINTAINER@|$maintainer|g" \
    -e "s|@DATE@|$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")|g" "$deb_dir/changelog.in" \
  | gzip -9n >"$doc/changelog.gz"
install -D -m 0644 "$deb_dir/lintian-overrides" "$root/usr/share/lintian/overrides/$pkg"
gzip -9n <"$top/README.md" >"$doc/README.md.gz"
# Examples: the Prometheus/Grafana/Parca/Pyroscope files in deploy/, deploy/prometheus/ (rules
# and their tests) and deploy/grafana/ (dashboards), as they appear there; the policies example.
for f in "$top"/deploy/*.yml "$top"/deploy/*.yaml "$top"/deploy/*.json "$top"/deploy/*.alloy \
         "$top"/deploy/pyroscope-push.sh "$top"/config/policies.yaml; do
  if [ -f "$f" ]; then install -m 0644 "$f" "$doc/examples/"; fi
done
for f in "$top"/deploy/prometheus/* "$top"/deploy/grafana/*; do
  if [ -f "$f" ]; then install -D -m 0644 "$f" "$doc/examples/$(basename "$(dirname "$f")")/$(basename "$f")"; fi
done

# Depends: the shared libraries' packages, adduser for postinst, and procps when the unit
# runs /bin/kill (ExecReload).
printf 'Source: kvmprof\n\nPackage: %s\nArchitecture: any\n' "$pkg" >"$work/debian/control"
shlibs=$(cd "$work" && dpkg-shlibdeps -O --warnings=0 "debian/$pkg/usr/sbin/kvmprof-agent" \
         | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || die "dpkg-shlibdeps found no dependencies"
depends="adduser (>= 3.122), $shlibs"  # 3.122: adduser --comment
if grep -Eq '^Exec[A-Za-z]*=.*/bin/kill' "$root/lib/systemd/system/kvmprof-agent.service"; then
  depends="$depends, procps"
fi

install -m 0755 "$deb_dir/postinst" "$deb_dir/prerm" "$deb_dir/postrm" "$root/DEBIAN/"
install -m 0644 "$deb_dir/conffiles" "$root/DEBIAN/conffiles"
(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\n' | LC_ALL=C sort \
   | grep -vxF -f <(sed 's|^/||' DEBIAN/conffiles) | xargs -d '\n' md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"
installed_size=$(du -s -k --apparent-size --exclude=DEBIAN "$root" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$maintainer|" \
    -e "s|@INSTALLED_SIZE@|$installed_size|" -e "s|@DEPENDS@|$depends|" \
    "$deb_dir/control.in" >"$root/DEBIAN/control"

find "$root" -exec touch --no-dereference -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$out"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "package: $deb"
