#!/usr/bin/env bash
# Installs the pinned Bicep CLI into .tools/bicep/<version>/bicep (git-ignored) and prints its version.
#
# The compiler comes from the NuGet package Azure.Bicep.CommandLine.linux-x64, which carries the native `bicep`
# executable: a throw-away project downloads exactly that package version with `dotnet restore` (through the NuGet
# sources this machine is configured with), and the executable is copied out of it. The executable's SHA-256 is
# pinned too, so a different build served under the same version number is refused.
#
# Needs: the .NET SDK (`dotnet`), Linux on x86-64. Elsewhere use `az bicep install --version v<version>` instead
# (README, "Deploy to Azure with `azd up`"). The infra tests (tests/infra/bicep-cli.test.ts) read the version below
# and look for the executable where this script puts it.
#
# Usage: bash scripts/install-bicep.sh        (does nothing but print the version when it is already installed)
set -euo pipefail

BICEP_VERSION="0.49.2"
BICEP_SHA256="0ab9de90c2493f206f8281bae74f9ee2d5ed3605548dab1adf41fef185e1f7c5"
PACKAGE="Azure.Bicep.CommandLine.linux-x64"

root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.tools/bicep/$BICEP_VERSION"
bin="$dest/bicep"

fail() {
  echo "install-bicep: $*" >&2
  exit 1
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

report() {
  local printed
  printed="$("$bin" --version)"
  case "$printed" in
    "Bicep CLI version $BICEP_VERSION "*) echo "$printed ($bin)" ;;
    *) fail "$bin printed '$printed', expected Bicep CLI version $BICEP_VERSION" ;;
  esac
}

if [ -x "$bin" ] && [ "$(sha256_of "$bin")" = "$BICEP_SHA256" ]; then
  report
  exit 0
fi

[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] ||
  fail "the $PACKAGE package only runs on Linux x86-64; here use: az bicep install --version v$BICEP_VERSION"
command -v dotnet >/dev/null 2>&1 ||
  fail "dotnet (the .NET SDK) is not on PATH; it is needed to fetch $PACKAGE $BICEP_VERSION from NuGet"

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The package has no library: any target framework restores it. Use the SDK's own, which is always installed.
sdk_major="$(dotnet --version | cut -d. -f1)"
cat >"$work/restore.csproj" <<EOF
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <TargetFramework>net${sdk_major}.0</TargetFramework>
    <NuGetAudit>false</NuGetAudit>
  </PropertyGroup>
  <ItemGroup>
    <PackageDownload Include="$PACKAGE" Version="[$BICEP_VERSION]" />
  </ItemGroup>
</Project>
EOF

echo "install-bicep: fetching $PACKAGE $BICEP_VERSION from NuGet..."
if ! dotnet restore "$work/restore.csproj" --packages "$work/packages" >"$work/restore.log" 2>&1; then
  cat "$work/restore.log" >&2
  fail "NuGet did not serve $PACKAGE $BICEP_VERSION (see the restore output above). Do not skip the compile: pin a version the feed serves, in this script."
fi

id="$(echo "$PACKAGE" | tr '[:upper:]' '[:lower:]')"
fetched="$work/packages/$id/$BICEP_VERSION/tools/bicep"
[ -f "$fetched" ] || fail "the restored package has no tools/bicep (looked for $fetched)"
actual="$(sha256_of "$fetched")"
[ "$actual" = "$BICEP_SHA256" ] ||
  fail "tools/bicep of $PACKAGE $BICEP_VERSION has SHA-256 $actual, expected $BICEP_SHA256: refusing it"

mkdir -p "$dest"
# NuGet extraction drops the executable bit; install sets it again.
install -m 0755 "$fetched" "$bin.partial"
mv -f "$bin.partial" "$bin"
report
