/* push_cmd.c: `wasmlet push MODULE.wasm REF`, which publishes a module to
 * an OCI registry (in the CNCF wasm artifact format unless --format says
 * otherwise), so that users need no other tool to ship a module. */
#include "image/push_cmd.h"
#include "image/image.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

static void usage(FILE *f)
{
    fputs("usage: wasmlet push [options] MODULE.wasm REGISTRY/REPOSITORY[:TAG]\n"
          "  --format F              wasm (default; CNCF wasm artifact), wasm-to-oci, oci-image\n"
          "  --insecure-registry H   reach H over plain HTTP (loopback always is)\n"
          "  --registry-config FILE  credentials (docker config.json format)\n",
          f);
}

int image_push_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"format", required_argument, NULL, 'f'},
        {"insecure-registry", required_argument, NULL, 'k'},
        {"registry-config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    image_push_options_t po = {.format = IMAGE_FORMAT_WASM_ARTIFACT};
    const char *insecure[2] = {NULL, NULL};
    const char *creds = NULL;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'f':
            if (image_format_parse(optarg, &po.format) == -1) {
                fprintf(stderr, "wasmlet push: unknown format \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'k':
            insecure[0] = optarg;
            po.insecure_registries = insecure;
            break;
        case 'c':
            creds = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (argc - optind != 2) {
        usage(stderr);
        return 2;
    }
    err_t err;
    image_auth_t auth = IMAGE_AUTH_INIT;
    if (creds && image_auth_load_file(&auth, creds, &err) == -1) {
        fprintf(stderr, "wasmlet push: %s\n", err.msg);
        return 1;
    }
    char digest[IMAGE_DIGEST_MAX];
    int rc = image_push(argv[optind], argv[optind + 1], &po, &auth, digest, &err);
    image_auth_free(&auth);
    if (rc == -1) {
        fprintf(stderr, "wasmlet push: %s\n", err.msg);
        return 1;
    }
    printf("%s@%s\n", argv[optind + 1], digest);
    return 0;
}
