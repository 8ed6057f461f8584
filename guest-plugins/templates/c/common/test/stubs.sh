#!/bin/sh
# stubs.sh GEN_O: prints C stubs for the raw wasm imports that GEN_O (the generated
# bindings compiled for the host) refers to. They are never reached while
# test/fake_host.c fakes every import the policy calls; if one is reached anyway, it
# names the import and stops the tests.
set -eu
cat <<'HEAD'
#include <stdio.h>
#include <stdlib.h>
static void unfaked(const char *name) {
    fprintf(stderr, "test: the policy called the import %s, which test/fake_host.c does not define\n", name);
    abort();
}
HEAD
nm -u "$1" | awk '{ print $NF }' | while read -r sym; do
    case $sym in
    __wasm_import_*) printf 'void %s(void) { unfaked("%s"); }\n' "$sym" "${sym#__wasm_import_}" ;;
    __component_type_object_force_link_*) printf 'void %s(void) {}\n' "$sym" ;;
    esac
done
