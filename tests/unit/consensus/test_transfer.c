/*
 * Snapshot images and their out-of-band transfer (consensus/image.c,
 * consensus/transfer.c), on real files and loopback TCP in a fresh mkdtemp
 * directory: the descriptor codec and what it refuses; digest, verify and
 * the image pruning; a server on an ephemeral port streaming a 9 MiB image
 * that the client checks on the way; a missing image, a symlink named like
 * an image, a wrong size and a damaged image, each refused with nothing left
 * behind; the connection bound (a fetch waits while every slot is held and
 * gets through once one frees); a stop that cuts a stalled peer promptly;
 * and a fetch from a dead address that gives up by its deadline.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#include "consensus/image.h"
#include "consensus/transfer.h"
#include "proto/err.h"

static char dir[64], images[128];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/bkv-transfer-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(images, sizeof(images), "%s/images", dir);
    return mkdir(images, 0700);
}

static int teardown(void)
{
    return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static double now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1000 + (double)t.tv_nsec / 1e6;
}

/* Write size pseudo-random bytes to path. */
static void write_file(const char *path, size_t size, unsigned seed)
{
    FILE *f = fopen(path, "wb");
    uint32_t x = seed * 2654435761u + 1;

    CU_ASSERT_FATAL(f != NULL);
    for (size_t i = 0; i < size; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        fputc((int)(x & 0xff), f);
    }
    fclose(f);
}

/* An image of size bytes in the image directory; its descriptor in *d. */
static void make_image(size_t size, unsigned seed, struct bkv_image_desc *d)
{
    char tmp[256], path[256], err[256];

    snprintf(tmp, sizeof(tmp), "%s/tmp", dir);
    write_file(tmp, size, seed);
    d->index = 1000 + seed;
    CU_ASSERT_EQUAL_FATAL(bkv_image_digest(tmp, &d->size, d->sha256, err, sizeof(err)), BKV_OK);
    CU_ASSERT_EQUAL(d->size, size);
    CU_ASSERT_EQUAL_FATAL(bkv_image_path(images, d->sha256, path, sizeof(path)), BKV_OK);
    CU_ASSERT_FATAL(rename(tmp, path) == 0);
}

static int files_equal(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int ca, cb, same = fa != NULL && fb != NULL;

    while (same) {
        ca = fgetc(fa);
        cb = fgetc(fb);
        same = ca == cb;
        if (ca == EOF || cb == EOF)
            break;
    }
    if (fa != NULL)
        fclose(fa);
    if (fb != NULL)
        fclose(fb);
    return same;
}

static void test_descriptor(void)
{
    struct bkv_image_desc d = {42, 123456, {0}}, e;
    uint8_t buf[BKV_IMAGE_DESC_LEN], bad[BKV_IMAGE_DESC_LEN];
    char name[BKV_IMAGE_NAME_LEN + 1], path[16];

    for (int i = 0; i < 32; i++)
        d.sha256[i] = (uint8_t)(i * 7 + 1);
    bkv_image_desc_encode(&d, buf);
    CU_ASSERT_EQUAL(memcmp(buf, "BKV-SNAP", 8), 0);
    CU_ASSERT_EQUAL(bkv_image_desc_decode(buf, sizeof(buf), &e), BKV_OK);
    CU_ASSERT_EQUAL(e.index, 42);
    CU_ASSERT_EQUAL(e.size, 123456);
    CU_ASSERT_EQUAL(memcmp(e.sha256, d.sha256, 32), 0);
    /* every byte of the header matters; the length is exact */
    CU_ASSERT_EQUAL(bkv_image_desc_decode(buf, sizeof(buf) - 1, &e), BKV_ERR_FORMAT);
    CU_ASSERT_EQUAL(bkv_image_desc_decode(buf, 0, &e), BKV_ERR_FORMAT);
    for (int at = 0; at < 16; at++) {
        memcpy(bad, buf, sizeof(bad));
        bad[at] ^= 0x40;
        CU_ASSERT_EQUAL(bkv_image_desc_decode(bad, sizeof(bad), &e), BKV_ERR_FORMAT);
    }
    d.size = 0;
    bkv_image_desc_encode(&d, bad);
    CU_ASSERT_EQUAL(bkv_image_desc_decode(bad, sizeof(bad), &e), BKV_ERR_FORMAT);
    d.size = UINT64_MAX;
    bkv_image_desc_encode(&d, bad);
    CU_ASSERT_EQUAL(bkv_image_desc_decode(bad, sizeof(bad), &e), BKV_ERR_FORMAT);
    bkv_image_name(d.sha256, name);
    CU_ASSERT_EQUAL(strlen(name), BKV_IMAGE_NAME_LEN);
    CU_ASSERT_EQUAL(strncmp(name, "0108", 4), 0);
    CU_ASSERT_EQUAL(strcmp(name + 64, ".db"), 0);
    CU_ASSERT_EQUAL(bkv_image_path("/x", d.sha256, path, sizeof(path)), BKV_ERR_LENGTH);
}

static void test_verify_and_gc(void)
{
    struct bkv_image_desc a, b, c;
    char path[256], other[256], err[256];
    struct stat st;

    make_image(5000, 1, &a);
    make_image(7000, 2, &b);
    make_image(9000, 3, &c);
    snprintf(other, sizeof(other), "%s/notes.txt", images);
    write_file(other, 10, 9);
    CU_ASSERT_EQUAL(bkv_image_path(images, a.sha256, path, sizeof(path)), BKV_OK);
    CU_ASSERT_EQUAL(bkv_image_verify(path, &a, err, sizeof(err)), BKV_OK);
    a.size++;
    CU_ASSERT_EQUAL(bkv_image_verify(path, &a, err, sizeof(err)), BKV_ERR_FORMAT);
    a.size--;
    a.sha256[5] ^= 1;
    CU_ASSERT_EQUAL(bkv_image_verify(path, &a, err, sizeof(err)), BKV_ERR_FORMAT);
    printf("\n  wrong hash: %s\n", err);
    a.sha256[5] ^= 1;
    CU_ASSERT_EQUAL(bkv_image_verify("/nonexistent/x.db", &a, err, sizeof(err)), BKV_ERR_IO);
    {
        uint8_t k[2][32];

        memcpy(k[0], c.sha256, 32);
        memcpy(k[1], a.sha256, 32);
        CU_ASSERT_EQUAL(bkv_image_gc(images, (const uint8_t(*)[32])k, 2), 1);
    }
    CU_ASSERT_EQUAL(stat(path, &st), 0); /* a kept */
    CU_ASSERT_EQUAL(bkv_image_path(images, b.sha256, path, sizeof(path)), BKV_OK);
    CU_ASSERT_NOT_EQUAL(stat(path, &st), 0); /* b gone */
    CU_ASSERT_EQUAL(stat(other, &st), 0);    /* not an image name: left alone */
    CU_ASSERT_EQUAL(bkv_image_gc(images, NULL, 0), 2);
    CU_ASSERT_EQUAL(bkv_image_gc("/nonexistent", NULL, 0), -1);
}

static struct bkv_transfer_server *serve(char *addr, size_t cap)
{
    struct bkv_transfer_server *s = NULL;
    char err[256] = "";

    CU_ASSERT_EQUAL_FATAL(bkv_transfer_serve("127.0.0.1:0", images, &s, err, sizeof(err)), BKV_OK);
    CU_ASSERT_FATAL(bkv_transfer_port(s) > 0);
    snprintf(addr, cap, "127.0.0.1:%u", bkv_transfer_port(s));
    return s;
}

/* The server's count once it reaches n (it counts after its last byte left), or at a deadline. */
static unsigned long wait_served(struct bkv_transfer_server *s, unsigned long n)
{
    for (double t = now_ms(); bkv_transfer_served(s) < n && now_ms() - t < 5000;)
        usleep(1000);
    return bkv_transfer_served(s);
}

static void test_fetch(void)
{
    struct bkv_transfer_server *s;
    struct bkv_image_desc d, small;
    char addr[64], src[256], dest[256], link[256], err[256];
    struct stat st;
    double t0;
    int rv;

    s = serve(addr, sizeof(addr));
    make_image(9 * 1024 * 1024 + 17, 4, &d);
    make_image(3000, 5, &small);
    CU_ASSERT_EQUAL(bkv_image_path(images, d.sha256, src, sizeof(src)), BKV_OK);
    snprintf(dest, sizeof(dest), "%s/fetched", dir);
    t0 = now_ms();
    rv = bkv_transfer_fetch(addr, d.sha256, d.size, dest, 10000, err, sizeof(err));
    CU_ASSERT_EQUAL(rv, BKV_OK);
    printf("\n  9 MiB image fetched in %.1f ms\n", now_ms() - t0);
    CU_ASSERT(files_equal(src, dest));
    CU_ASSERT_EQUAL(stat(dest, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
    CU_ASSERT_EQUAL(wait_served(s, 1), 1);
    /* the destination must be new */
    CU_ASSERT_EQUAL(bkv_transfer_fetch(addr, d.sha256, d.size, dest, 10000, err, sizeof(err)),
                    BKV_ERR_IO);
    unlink(dest);

    /* an image the server does not have */
    d.sha256[0] ^= 1;
    CU_ASSERT_EQUAL(bkv_transfer_fetch(addr, d.sha256, d.size, dest, 5000, err, sizeof(err)),
                    BKV_ERR_IO);
    printf("  missing: %s\n", err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "no such image"));
    CU_ASSERT_NOT_EQUAL(stat(dest, &st), 0);
    /* a symlink named like an image is not followed */
    CU_ASSERT_EQUAL(bkv_image_path(images, d.sha256, link, sizeof(link)), BKV_OK);
    CU_ASSERT_EQUAL(symlink(src, link), 0);
    CU_ASSERT_EQUAL(bkv_transfer_fetch(addr, d.sha256, d.size, dest, 5000, err, sizeof(err)),
                    BKV_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "no such image"));
    unlink(link);
    d.sha256[0] ^= 1;
    /* a size other than the descriptor's */
    CU_ASSERT_EQUAL(
        bkv_transfer_fetch(addr, small.sha256, small.size + 1, dest, 5000, err, sizeof(err)),
        BKV_ERR_FORMAT);
    printf("  wrong size: %s\n", err);
    CU_ASSERT_NOT_EQUAL(stat(dest, &st), 0);
    /* a damaged image on the server: the hash check refuses it, nothing is left */
    CU_ASSERT_EQUAL(bkv_image_path(images, small.sha256, src, sizeof(src)), BKV_OK);
    {
        FILE *f = fopen(src, "r+b");
        CU_ASSERT_FATAL(f != NULL);
        fseek(f, 100, SEEK_SET);
        fputc('!', f);
        fclose(f);
    }
    CU_ASSERT_EQUAL(
        bkv_transfer_fetch(addr, small.sha256, small.size, dest, 5000, err, sizeof(err)),
        BKV_ERR_FORMAT);
    printf("  damaged: %s\n", err);
    CU_ASSERT_NOT_EQUAL(stat(dest, &st), 0);
    CU_ASSERT(wait_served(s, 2) >= 2); /* the damaged image was sent whole */
    bkv_transfer_stop(s);
}

/* A connected socket to addr that sends nothing (holds a server slot). */
static int idle_client(unsigned port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_FATAL(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    return fd;
}

static void test_bounds(void)
{
    struct bkv_transfer_server *s;
    struct bkv_image_desc d;
    char addr[64], dest[256], err[256];
    int idle[BKV_TRANSFER_MAX_CONNS];
    double t0, took;

    s = serve(addr, sizeof(addr));
    make_image(4096, 6, &d);
    snprintf(dest, sizeof(dest), "%s/fetched", dir);
    /* every slot held by a silent peer: a fetch waits in the backlog and times out */
    for (int i = 0; i < BKV_TRANSFER_MAX_CONNS; i++)
        idle[i] = idle_client(bkv_transfer_port(s));
    t0 = now_ms();
    CU_ASSERT_EQUAL(bkv_transfer_fetch(addr, d.sha256, d.size, dest, 300, err, sizeof(err)),
                    BKV_ERR_IO);
    took = now_ms() - t0;
    printf("\n  all %d slots held: %s (%.0f ms)\n", BKV_TRANSFER_MAX_CONNS, err, took);
    CU_ASSERT(took >= 250 && took < 3000);
    /* one slot frees: the next fetch gets through */
    close(idle[0]);
    CU_ASSERT_EQUAL(bkv_transfer_fetch(addr, d.sha256, d.size, dest, 5000, err, sizeof(err)),
                    BKV_OK);
    unlink(dest);
    /* stop with silent peers connected: the workers are cut loose at once */
    t0 = now_ms();
    bkv_transfer_stop(s);
    took = now_ms() - t0;
    printf("  stop with %d stalled peers: %.1f ms\n", BKV_TRANSFER_MAX_CONNS - 1, took);
    CU_ASSERT(took < 1000);
    for (int i = 1; i < BKV_TRANSFER_MAX_CONNS; i++)
        close(idle[i]);
    /* nobody listens any more: refused at once; a bad address is refused before any I/O */
    CU_ASSERT_EQUAL(bkv_transfer_fetch(addr, d.sha256, d.size, dest, 2000, err, sizeof(err)),
                    BKV_ERR_IO);
    printf("  after stop: %s\n", err);
    CU_ASSERT_EQUAL(bkv_transfer_fetch("no-port", d.sha256, d.size, dest, 2000, err, sizeof(err)),
                    BKV_ERR_IO);
    CU_ASSERT_EQUAL(bkv_transfer_serve("127.0.0.1:notaport", images, &s, err, sizeof(err)),
                    BKV_ERR_INVALID);
}

/* A peer that answers nothing: the fetch gives up at its deadline. */
static void test_fetch_deadline(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    struct bkv_image_desc d = {1, 100, {1}};
    char addr[64], dest[256], err[256];
    double t0, took;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_FATAL(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
                    listen(lfd, 4) == 0 && getsockname(lfd, (struct sockaddr *)&sa, &len) == 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sa.sin_port));
    snprintf(dest, sizeof(dest), "%s/never", dir);
    t0 = now_ms();
    CU_ASSERT_EQUAL(bkv_transfer_fetch(addr, d.sha256, d.size, dest, 400, err, sizeof(err)),
                    BKV_ERR_IO);
    took = now_ms() - t0;
    printf("\n  silent peer: %s (%.0f ms)\n", err, took);
    CU_ASSERT(took >= 350 && took < 3000);
    CU_ASSERT_NOT_EQUAL(access(dest, F_OK), 0);
    close(lfd);
}

static CU_TestInfo tests[] = {
    {"descriptor: round trip, every refused field", test_descriptor},
    {"images: verify size and hash; prune all but the kept", test_verify_and_gc},
    {"fetch: 9 MiB streamed and checked; missing, symlink, size, damage", test_fetch},
    {"server: bounded connections, prompt stop", test_bounds},
    {"fetch: a silent peer meets the deadline", test_fetch_deadline},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    int rv;

    if (setup() != 0) {
        perror("setup");
        return 1;
    }
    rv = bkv_test_main("consensus_transfer", tests, NULL, NULL);
    teardown();
    return rv;
}
