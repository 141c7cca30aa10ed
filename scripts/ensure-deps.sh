#!/usr/bin/env bash
# Installs what the build needs beyond cargo: a C toolchain, cmake (Pingora's
# zlib-ng is built with cmake), pkg-config and OpenSSL's headers (libssl-dev). Safe to run again: it installs only what is missing.
set -euo pipefail

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v c++ >/dev/null 2>&1 || need+=(g++)
# TLS: Pingora's openssl feature, linked against the system OpenSSL
# (.cargo/config.toml sets OPENSSL_NO_VENDOR) found through pkg-config.
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || need+=(libssl-dev)
# Each argument is COMMAND:PACKAGE (install PACKAGE when COMMAND is
# missing), or dpkg=PACKAGE for a package that installs no command.
for extra in "$@"; do
  case "$extra" in
    dpkg=*) dpkg -s "${extra#dpkg=}" >/dev/null 2>&1 || need+=("${extra#dpkg=}") ;;
    *) command -v "${extra%%:*}" >/dev/null 2>&1 || need+=("${extra#*:}") ;;
  esac
done

if ((${#need[@]})); then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "installing: ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is not installed: install Rust (rustup) first" >&2
  exit 1
fi
