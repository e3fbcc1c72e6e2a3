/*
 * checksum.c - integrity checks for the nightly export files.
 *
 * Prints the CRC-32 and the SHA-256 digest of each file named on the command line.
 * CRC-32 only detects transfer errors; the SHA-256 digest is what the partner verifies.
 *
 *   cc -O2 -o checksum checksum.c -lcrypto
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

static uint32_t crc_table[256];

static void crc32_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        }
        crc_table[n] = c;
    }
}

static uint32_t crc32_update(uint32_t crc, const unsigned char *buf, size_t len)
{
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc = crc_table[(crc ^ buf[i]) & 0xff] ^ (crc >> 8);
    }
    return ~crc;
}

static int digest_file(const char *path, uint32_t *crc_out, unsigned char *sha_out, unsigned int *sha_len)
{
    unsigned char buf[64 * 1024];
    size_t n;
    uint32_t crc = 0;
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        fprintf(stderr, "checksum: %s: %s\n", path, strerror(errno));
        return -1;
    }

    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        fclose(fp);
        EVP_MD_CTX_free(ctx);
        return -1;
    }
    while ((n = fread(buf, 1, sizeof buf, fp)) > 0) {
        crc = crc32_update(crc, buf, n);
        EVP_DigestUpdate(ctx, buf, n);
    }
    int failed = ferror(fp);
    fclose(fp);
    EVP_DigestFinal_ex(ctx, sha_out, sha_len);
    EVP_MD_CTX_free(ctx);
    *crc_out = crc;
    return failed ? -1 : 0;
}

int main(int argc, char **argv)
{
    int status = 0;
    crc32_init();
    for (int i = 1; i < argc; i++) {
        uint32_t crc;
        unsigned char sha[EVP_MAX_MD_SIZE];
        unsigned int sha_len = 0;
        if (digest_file(argv[i], &crc, sha, &sha_len) != 0) {
            status = 1;
            continue;
        }
        printf("%08x  ", crc);
        for (unsigned int j = 0; j < sha_len; j++) {
            printf("%02x", sha[j]);
        }
        printf("  %s\n", argv[i]);
    }
    return status;
}
