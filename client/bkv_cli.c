/*
 * bkv: the user's command line for BKV. Generate a backup key, encrypt and
 * decrypt backups with it, and register, recover or delete it in the vault
 * behind a BKV router (libbkv, client/bkv.h).
 *
 * Passwords come from a terminal prompt without echo, a file, or one line of
 * standard input; never from the command line, where other users can see
 * them. Key, token and password files that other users can read are refused.
 * Key files are created 0600 and never overwritten; decrypted output is
 * written to a temporary file next to --out and renamed only when the whole
 * stream has authenticated. Every error is one line on stderr that says what
 * happened and what to do, and the exit code tells scripts which case it was.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "client/bkv.h"
#include "proto/err.h"

enum exit_code {
    EXIT_OK = 0,
    EXIT_USAGE = 1,
    EXIT_WRONG_PASSWORD = 2,
    EXIT_DESTROYED = 3,
    EXIT_NOT_REGISTERED = 4,
    EXIT_UNREACHABLE = 5,
    EXIT_PIN_MISMATCH = 6,
    EXIT_REFUSED = 7,
    EXIT_OTHER = 8,
};

#define PASSWORD_MAX  1024
#define TOKEN_FILE    8192
#define KEY_FILE_MAX  1024
#define KEYCONFIG_MAX 4096

static const char *cmd = "bkv"; /* "bkv register" etc., for messages */

static const char exit_codes_help[] =
    "Exit codes:\n"
    "  0  success\n"
    "  1  usage error (bad or missing options, unreadable input files)\n"
    "  2  wrong password (the message says how many attempts are left)\n"
    "  3  the key was destroyed after too many wrong passwords\n"
    "  4  no key is registered for this account\n"
    "  5  the router cannot be reached, or the vault is unavailable\n"
    "  6  the router's key config does not match the pinned one\n"
    "  7  the router refused the request (token, rate limit, size)\n"
    "  8  any other error\n";

static const char vault_options_help[] =
    "  --router HOST:PORT     the BKV router to talk to\n"
    "  --account ID           your account id (as in the token)\n"
    "  --token-file FILE      the account token from your app (mode 0600)\n"
    "  --keyconfig FILE       the realm key config to trust (as published by the realm)\n"
    "  --fingerprint HEX      or just its SHA-256 fingerprint (64 hex digits); with both,\n"
    "                         they must agree. Without --keyconfig the config is fetched\n"
    "                         from the router and refused unless it has this fingerprint\n"
    "  --timeout SECONDS      per HTTP request (default 10)\n";

static const char password_options_help[] =
    "  --password-file FILE   read the password from the first line of FILE (mode 0600)\n"
    "  --password-stdin       read the password from the first line of standard input\n"
    "\n"
    "Without either, the password is asked for on the terminal without echo.\n"
    "A password is never accepted on the command line.\n";

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nRun \"%s --help\" for the options.\n", cmd);
    return EXIT_USAGE;
}

/* --- files ---------------------------------------------------------------- */

/*
 * Read all of path (at most cap - 1 bytes, NUL-terminated) into buf. With
 * private, refuse a regular file that other users can read or write.
 */
static int read_file(const char *what, const char *path, int private, char *buf, size_t cap,
                     size_t *len)
{
    struct stat sb;
    size_t n = 0;
    int fd, rc = EXIT_USAGE;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fail("cannot open %s %s: %s", what, path, strerror(errno));
        return EXIT_USAGE;
    }
    if (fstat(fd, &sb) != 0) {
        fail("cannot read %s %s: %s", what, path, strerror(errno));
        goto out;
    }
    if (private && S_ISREG(sb.st_mode) && (sb.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        fail("%s %s can be read or changed by other users; run \"chmod 600 %s\" and try again",
             what, path, path);
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fail("cannot read %s %s: %s", what, path, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n == cap - 1) {
            char extra;

            if (read(fd, &extra, 1) > 0) {
                fail("%s %s is too large to be one", what, path);
                goto out;
            }
            break;
        }
    }
    buf[n] = '\0';
    *len = n;
    rc = EXIT_OK;
out:
    close(fd);
    if (rc != EXIT_OK)
        OPENSSL_cleanse(buf, cap);
    return rc;
}

/* Drop trailing spaces, tabs and line ends. */
static void trim_end(char *s, size_t *len)
{
    while (*len > 0 && (s[*len - 1] == '\n' || s[*len - 1] == '\r' || s[*len - 1] == ' ' ||
                        s[*len - 1] == '\t'))
        s[--*len] = '\0';
}

static int read_key_file(const char *path, uint8_t key[BKV_KEY_LEN])
{
    char text[KEY_FILE_MAX];
    size_t len = 0;
    int rc;

    rc = read_file("key file", path, 1, text, sizeof(text), &len);
    if (rc != EXIT_OK)
        return rc;
    trim_end(text, &len);
    rc = bkv_key_parse(text, key);
    OPENSSL_cleanse(text, sizeof(text));
    switch (rc) {
    case BKV_OK:
        return EXIT_OK;
    case BKV_ERR_MAC:
        fail("the key in %s has a typo: its check digits do not match; compare it with your "
             "written-down key",
             path);
        break;
    case BKV_ERR_LENGTH:
        fail("the key in %s has the wrong number of digits; a key is 17 groups of 4 hex digits",
             path);
        break;
    default:
        fail("%s does not hold a BKV key (%s); a key is 17 groups of 4 hex digits", path,
             bkv_strerror(rc));
        break;
    }
    return EXIT_USAGE;
}

/*
 * Create path for writing, mode 0600, never over an existing file. Returns
 * the fd, or -1 with *code set (USAGE if the file exists, else OTHER).
 */
static int create_new_file(const char *what, const char *path, int *code)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

    if (fd < 0) {
        if (errno == EEXIST) {
            fail("%s already exists; not overwriting it. Choose another file for the %s", path,
                 what);
            *code = EXIT_USAGE;
        } else {
            fail("cannot create %s: %s", path, strerror(errno));
            *code = EXIT_OTHER;
        }
    }
    return fd;
}

/* Write all of data to fd, sync and close it; on failure the file at path is removed. */
static int finish_new_file(int fd, const char *path, const char *data, size_t len)
{
    size_t off = 0;

    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            goto fail;
        off += (size_t)w;
    }
    if (fsync(fd) != 0)
        goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    return EXIT_OK;
fail:
    fail("cannot write %s: %s", path, errno ? strerror(errno) : "short write");
    if (fd >= 0)
        close(fd);
    unlink(path);
    return EXIT_OTHER;
}

/* Print the key as text, or write it to out_fd (a new file at out_path). */
static int output_key(const uint8_t key[BKV_KEY_LEN], int out_fd, const char *out_path)
{
    char text[BKV_KEY_TEXT_MAX + 1];
    int rc;

    rc = bkv_key_format(key, text, sizeof(text) - 1);
    if (rc != BKV_OK) {
        fail("cannot format the key (%s)", bkv_strerror(rc));
        if (out_fd >= 0) {
            close(out_fd);
            unlink(out_path);
        }
        return EXIT_OTHER;
    }
    strcat(text, "\n");
    if (out_fd >= 0)
        rc = finish_new_file(out_fd, out_path, text, strlen(text));
    else
        rc = fputs(text, stdout) < 0 || fflush(stdout) != 0 ? EXIT_OTHER : EXIT_OK;
    OPENSSL_cleanse(text, sizeof(text));
    return rc;
}

/* --- passwords ------------------------------------------------------------ */

/* One line from fd (without the line end) into buf; 0 or an exit code. */
static int read_line(int fd, const char *from, char *buf, size_t cap, size_t *len)
{
    size_t n = 0;
    int got = 0;

    for (;;) {
        char ch;
        ssize_t r = read(fd, &ch, 1);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fail("cannot read the password from %s: %s", from, strerror(errno));
            goto bad;
        }
        if (r == 0 || ch == '\n')
            break;
        got = 1;
        if (n + 1 >= cap) {
            fail("the password from %s is longer than %d bytes", from, PASSWORD_MAX);
            goto bad;
        }
        buf[n++] = ch;
    }
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    if (!got) {
        fail("no password in %s", from);
        goto bad;
    }
    buf[n] = '\0';
    *len = n;
    return EXIT_OK;
bad:
    OPENSSL_cleanse(buf, cap);
    return EXIT_USAGE;
}

/* The terminal state to put back if a signal arrives while echo is off. */
static int tty_fd = -1;
static struct termios tty_saved;

static void tty_restore_and_reraise(int sig)
{
    if (tty_fd >= 0)
        tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
    raise(sig); /* SA_RESETHAND: the default action this time */
}

static int prompt_line(int fd, const char *prompt, char *buf, size_t cap, size_t *len)
{
    struct sigaction sa, old_int, old_term, old_hup;
    struct termios noecho;
    int rc;

    if (tcgetattr(fd, &tty_saved) != 0) {
        fail("cannot turn off echo on the terminal: %s; use --password-file or "
             "--password-stdin",
             strerror(errno));
        return EXIT_USAGE;
    }
    noecho = tty_saved;
    noecho.c_lflag &= ~(tcflag_t)ECHO;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = tty_restore_and_reraise;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    tty_fd = fd;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGHUP, &sa, &old_hup);
    if (tcsetattr(fd, TCSAFLUSH, &noecho) != 0) {
        fail("cannot turn off echo on the terminal: %s", strerror(errno));
        rc = EXIT_USAGE;
        goto out;
    }
    if (write(fd, prompt, strlen(prompt)) < 0) {
        rc = EXIT_USAGE;
        goto out;
    }
    rc = read_line(fd, "the terminal", buf, cap, len);
out:
    tcsetattr(fd, TCSAFLUSH, &tty_saved);
    tty_fd = -1;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    if (write(fd, "\n", 1) < 0) {
        /* the newline is cosmetic */
    }
    return rc;
}

/*
 * The password: from --password-file, --password-stdin, or the terminal. With
 * confirm (register), a terminal prompt asks twice. An empty password is
 * refused when refuse_empty.
 */
static int get_password(const char *file, int from_stdin, int confirm, char *buf, size_t cap,
                        size_t *len)
{
    int rc;

    if (file != NULL) {
        char tmp[PASSWORD_MAX + 64];
        size_t n = 0;
        char *nl;

        rc = read_file("password file", file, 1, tmp, sizeof(tmp), &n);
        if (rc != EXIT_OK)
            return rc;
        if (n == 0) {
            fail("the password file %s is empty", file);
            return EXIT_USAGE;
        }
        nl = memchr(tmp, '\n', n);
        if (nl != NULL)
            n = (size_t)(nl - tmp);
        if (n > 0 && tmp[n - 1] == '\r')
            n--;
        if (n >= cap) {
            fail("the password in %s is longer than %d bytes", file, PASSWORD_MAX);
            OPENSSL_cleanse(tmp, sizeof(tmp));
            return EXIT_USAGE;
        }
        memcpy(buf, tmp, n);
        buf[n] = '\0';
        *len = n;
        OPENSSL_cleanse(tmp, sizeof(tmp));
    } else if (from_stdin) {
        rc = read_line(STDIN_FILENO, "standard input", buf, cap, len);
        if (rc != EXIT_OK)
            return rc;
    } else {
        char again[PASSWORD_MAX + 1];
        size_t again_len = 0;
        int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);

        if (fd < 0) {
            fail("there is no terminal to ask for the password on; use --password-file FILE or "
                 "--password-stdin");
            return EXIT_USAGE;
        }
        rc = prompt_line(fd, "Password: ", buf, cap, len);
        if (rc == EXIT_OK && confirm) {
            rc = prompt_line(fd, "Repeat the password: ", again, sizeof(again), &again_len);
            if (rc == EXIT_OK && (again_len != *len || CRYPTO_memcmp(again, buf, again_len) != 0)) {
                fail("the two passwords differ; nothing was sent. Run the command again");
                rc = EXIT_USAGE;
            }
        }
        OPENSSL_cleanse(again, sizeof(again));
        close(fd);
        if (rc != EXIT_OK) {
            OPENSSL_cleanse(buf, cap);
            return rc;
        }
    }
    if (confirm && *len == 0) {
        fail("the password is empty; choose a password to protect the key");
        OPENSSL_cleanse(buf, cap);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* --- options -------------------------------------------------------------- */

enum {
    OPT_HELP = 'h',
    OPT_OUT = 'o',
    OPT_IN = 'i',
    OPT_KEY_FILE = 256,
    OPT_ROUTER,
    OPT_ACCOUNT,
    OPT_TOKEN_FILE,
    OPT_KEYCONFIG,
    OPT_FINGERPRINT,
    OPT_PASSWORD_FILE,
    OPT_PASSWORD_STDIN,
    OPT_TIMEOUT,
};

struct opts {
    int help;
    const char *out, *in, *key_file;
    const char *router, *account, *token_file, *keyconfig, *fingerprint;
    const char *password_file;
    int password_stdin;
    unsigned timeout_s;
};

static const struct option all_options[] = {
    {"help", no_argument, NULL, OPT_HELP},
    {"out", required_argument, NULL, OPT_OUT},
    {"in", required_argument, NULL, OPT_IN},
    {"key-file", required_argument, NULL, OPT_KEY_FILE},
    {"router", required_argument, NULL, OPT_ROUTER},
    {"account", required_argument, NULL, OPT_ACCOUNT},
    {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
    {"keyconfig", required_argument, NULL, OPT_KEYCONFIG},
    {"fingerprint", required_argument, NULL, OPT_FINGERPRINT},
    {"password-file", required_argument, NULL, OPT_PASSWORD_FILE},
    {"password-stdin", no_argument, NULL, OPT_PASSWORD_STDIN},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {NULL, 0, NULL, 0},
};

/*
 * Parse argv for a subcommand that accepts the options in allowed (a string
 * of option values, as chars for short ones and via the table for long
 * ones). 0, or EXIT_USAGE after printing why.
 */
static int parse_opts(int argc, char **argv, const int *allowed, size_t n_allowed, struct opts *o)
{
    int ch;

    memset(o, 0, sizeof(*o));
    o->timeout_s = 10;
    /* A password on the command line would be visible to every user (ps, /proc). */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if ((strncmp(argv[i], "--password", 10) == 0 &&
             strncmp(argv[i], "--password-file", 15) != 0 &&
             strcmp(argv[i], "--password-stdin") != 0) ||
            strcmp(argv[i], "-p") == 0 || strncmp(argv[i], "--pass=", 7) == 0 ||
            strcmp(argv[i], "--pass") == 0)
            return usage_error("a password is never taken from the command line (other users "
                               "can see it); use --password-file FILE, --password-stdin, or "
                               "the prompt");
    }
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":ho:i:", all_options, NULL)) != -1) {
        int ok = 0;

        if (ch == '?')
            return usage_error("unknown option %s", argv[optind - 1]);
        if (ch == ':')
            return usage_error("option %s needs a value", argv[optind - 1]);
        for (size_t i = 0; i < n_allowed; i++)
            ok |= allowed[i] == ch;
        if (!ok && ch != OPT_HELP)
            return usage_error("option %s does not apply here", argv[optind - 1]);
        switch (ch) {
        case OPT_HELP:
            o->help = 1;
            break;
        case OPT_OUT:
            o->out = optarg;
            break;
        case OPT_IN:
            o->in = optarg;
            break;
        case OPT_KEY_FILE:
            o->key_file = optarg;
            break;
        case OPT_ROUTER:
            o->router = optarg;
            break;
        case OPT_ACCOUNT:
            o->account = optarg;
            break;
        case OPT_TOKEN_FILE:
            o->token_file = optarg;
            break;
        case OPT_KEYCONFIG:
            o->keyconfig = optarg;
            break;
        case OPT_FINGERPRINT:
            o->fingerprint = optarg;
            break;
        case OPT_PASSWORD_FILE:
            o->password_file = optarg;
            break;
        case OPT_PASSWORD_STDIN:
            o->password_stdin = 1;
            break;
        case OPT_TIMEOUT: {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);

            if (*optarg == '\0' || *end != '\0' || v == 0 || v > 3600)
                return usage_error("--timeout takes a number of seconds from 1 to 3600");
            o->timeout_s = (unsigned)v;
            break;
        }
        default:
            return usage_error("unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc && !o->help)
        return usage_error("unexpected argument \"%s\"", argv[optind]);
    if (o->password_file != NULL && o->password_stdin)
        return usage_error("give --password-file or --password-stdin, not both");
    return EXIT_OK;
}

/* --- keygen, encrypt, decrypt --------------------------------------------- */

static const char keygen_help[] =
    "usage: bkv keygen [--out FILE]\n"
    "\n"
    "Generate a new random backup key and print it as 17 groups of 4 hex digits\n"
    "(the last group is a check against typos). Write it down and keep it safe:\n"
    "with it you can decrypt your backups even without the vault.\n"
    "\n"
    "  --out FILE   write the key to FILE (created with mode 0600; an existing\n"
    "               file is never overwritten) instead of standard output\n"
    "\n"
    "Exit codes: 0 success, 1 usage error (or --out exists), 8 any other error.\n";

static int cmd_keygen(int argc, char **argv)
{
    static const int allowed[] = {OPT_OUT};
    uint8_t key[BKV_KEY_LEN];
    struct opts o;
    int rc, out_fd = -1;

    rc = parse_opts(argc, argv, allowed, 1, &o);
    if (rc != EXIT_OK || o.help) {
        if (o.help && rc == EXIT_OK)
            fputs(keygen_help, stdout);
        return rc;
    }
    if (o.out != NULL) {
        out_fd = create_new_file("key", o.out, &rc);
        if (out_fd < 0)
            return rc;
    }
    rc = bkv_key_generate(key);
    if (rc != BKV_OK) {
        fail("cannot generate a key (%s)", bkv_strerror(rc));
        if (out_fd >= 0) {
            close(out_fd);
            unlink(o.out);
        }
        return EXIT_OTHER;
    }
    rc = output_key(key, out_fd, o.out);
    OPENSSL_cleanse(key, sizeof(key));
    if (rc == EXIT_OK && o.out != NULL)
        printf("wrote a new backup key to %s; also write it down and keep it somewhere safe\n",
               o.out);
    return rc;
}

static const char encrypt_help[] =
    "usage: bkv encrypt --key-file KEY --in FILE --out FILE\n"
    "\n"
    "Encrypt a backup with a key (chunked AES-256-GCM; see docs/protocol.md).\n"
    "\n"
    "  --key-file KEY   the key as printed by \"bkv keygen\" (mode 0600)\n"
    "  --in FILE        the plaintext (\"-\" for standard input)\n"
    "  --out FILE       the encrypted output (\"-\" for standard output); written to a\n"
    "                   temporary file next to it and renamed when complete\n"
    "\n"
    "Exit codes: 0 success, 1 usage error or unreadable input, 8 any other error.\n";

static const char decrypt_help[] =
    "usage: bkv decrypt --key-file KEY --in FILE --out FILE\n"
    "\n"
    "Decrypt a backup made by \"bkv encrypt\". A wrong key, a changed, reordered or\n"
    "truncated file is detected. The output is written to a temporary file next to\n"
    "--out and renamed only when the whole backup has been verified, so --out never\n"
    "holds unverified data. With \"--out -\" the plaintext streams to standard output\n"
    "as it is verified chunk by chunk: discard it unless the exit code is 0.\n"
    "\n"
    "  --key-file KEY   the key as printed by \"bkv keygen\" (mode 0600)\n"
    "  --in FILE        the encrypted backup (\"-\" for standard input)\n"
    "  --out FILE       the decrypted output (\"-\" for standard output)\n"
    "\n"
    "Exit codes: 0 success, 1 usage error or unreadable input, 8 any other error\n"
    "(a wrong key, or a backup that was changed, reordered or cut short).\n";

static int cmd_crypt(int argc, char **argv, int decrypt)
{
    static const int allowed[] = {OPT_KEY_FILE, OPT_IN, OPT_OUT};
    uint8_t key[BKV_KEY_LEN];
    char err[256], *tmp = NULL;
    struct opts o;
    int in_fd = -1, out_fd = -1, rc;

    memset(key, 0, sizeof(key));
    rc = parse_opts(argc, argv, allowed, 3, &o);
    if (rc != EXIT_OK || o.help) {
        if (o.help && rc == EXIT_OK)
            fputs(decrypt ? decrypt_help : encrypt_help, stdout);
        return rc;
    }
    if (o.key_file == NULL || o.in == NULL || o.out == NULL)
        return usage_error("--key-file, --in and --out are all needed");
    rc = read_key_file(o.key_file, key);
    if (rc != EXIT_OK)
        goto out;
    if (strcmp(o.in, "-") == 0) {
        in_fd = STDIN_FILENO;
    } else {
        in_fd = open(o.in, O_RDONLY | O_CLOEXEC);
        if (in_fd < 0) {
            fail("cannot open %s: %s", o.in, strerror(errno));
            rc = EXIT_USAGE;
            goto out;
        }
    }
    if (strcmp(o.out, "-") == 0) {
        out_fd = STDOUT_FILENO;
    } else {
        size_t n = strlen(o.out) + sizeof(".bkv-tmp-XXXXXX");

        tmp = malloc(n);
        if (tmp == NULL) {
            fail("out of memory");
            rc = EXIT_OTHER;
            goto out;
        }
        snprintf(tmp, n, "%s.bkv-tmp-XXXXXX", o.out);
        out_fd = mkstemp(tmp); /* mode 0600 */
        if (out_fd < 0) {
            fail("cannot create a temporary file next to %s: %s", o.out, strerror(errno));
            free(tmp);
            tmp = NULL;
            rc = EXIT_OTHER;
            goto out;
        }
    }
    err[0] = '\0';
    rc = decrypt ? bkv_backup_decrypt(key, in_fd, out_fd, err, sizeof(err))
                 : bkv_backup_encrypt(key, in_fd, out_fd, err, sizeof(err));
    if (rc != BKV_OK) {
        if (decrypt)
            fail("%s; %s", err[0] ? err : bkv_strerror(rc),
                 tmp != NULL ? "nothing was written" : "discard what was written");
        else
            fail("%s", err[0] ? err : bkv_strerror(rc));
        rc = EXIT_OTHER;
        goto out;
    }
    if (tmp != NULL) {
        if (fsync(out_fd) != 0 || close(out_fd) != 0) {
            out_fd = -1;
            fail("cannot write %s: %s", o.out, strerror(errno));
            rc = EXIT_OTHER;
            goto out;
        }
        out_fd = -1;
        if (rename(tmp, o.out) != 0) {
            fail("cannot rename the output to %s: %s", o.out, strerror(errno));
            rc = EXIT_OTHER;
            goto out;
        }
        free(tmp);
        tmp = NULL;
    }
    rc = EXIT_OK;
out:
    if (out_fd >= 0 && out_fd != STDOUT_FILENO)
        close(out_fd);
    if (tmp != NULL) {
        unlink(tmp);
        free(tmp);
    }
    if (in_fd >= 0 && in_fd != STDIN_FILENO)
        close(in_fd);
    OPENSSL_cleanse(key, sizeof(key));
    return rc;
}

/* --- register, recover, delete -------------------------------------------- */

static const char register_help_head[] =
    "usage: bkv register --router HOST:PORT --account ID --token-file FILE\n"
    "                    (--keyconfig FILE | --fingerprint HEX) --key-file KEY\n"
    "                    [--password-file FILE | --password-stdin]\n"
    "\n"
    "Protect a backup key in the vault under a password. The password never leaves\n"
    "this device (OPAQUE); the vault cannot read the key. A later registration for\n"
    "the same account replaces this one. After too many wrong passwords in a row the\n"
    "vault destroys the key, so keep a written-down copy too.\n"
    "\n"
    "  --key-file KEY         the key to protect, as printed by \"bkv keygen\" (mode 0600)\n";

static const char recover_help_head[] =
    "usage: bkv recover --router HOST:PORT --account ID --token-file FILE\n"
    "                   (--keyconfig FILE | --fingerprint HEX) [--out FILE]\n"
    "                   [--password-file FILE | --password-stdin]\n"
    "\n"
    "Get the backup key back from the vault with the password. Every try counts\n"
    "against the limit of wrong passwords until one succeeds; at the limit the vault\n"
    "destroys the key for good.\n"
    "\n"
    "  --out FILE             write the key to FILE (created with mode 0600; an existing\n"
    "                         file is never overwritten) instead of standard output\n";

static const char delete_help_head[] =
    "usage: bkv delete --router HOST:PORT --account ID --token-file FILE\n"
    "                  (--keyconfig FILE | --fingerprint HEX)\n"
    "\n"
    "Remove the key registered for the account from the vault. Your written-down key\n"
    "keeps working for your backups.\n"
    "\n";

static int exit_for(enum bkv_outcome o)
{
    switch (o) {
    case BKV_OUTCOME_OK:
        return EXIT_OK;
    case BKV_OUTCOME_WRONG_PASSWORD:
        return EXIT_WRONG_PASSWORD;
    case BKV_OUTCOME_DESTROYED:
        return EXIT_DESTROYED;
    case BKV_OUTCOME_NOT_REGISTERED:
        return EXIT_NOT_REGISTERED;
    case BKV_OUTCOME_UNREACHABLE:
        return EXIT_UNREACHABLE;
    case BKV_OUTCOME_PIN_MISMATCH:
        return EXIT_PIN_MISMATCH;
    case BKV_OUTCOME_REFUSED:
        return EXIT_REFUSED;
    case BKV_OUTCOME_PROTOCOL:
        break;
    }
    return EXIT_OTHER;
}

/* Hex text or the raw bytes: a config file may be either. */
static int read_keyconfig(const char *path, uint8_t *out, size_t cap, size_t *len)
{
    char text[KEYCONFIG_MAX];
    size_t n = 0, m = 0;
    int hi = -1, rc;

    rc = read_file("key config", path, 0, text, sizeof(text), &n);
    if (rc != EXIT_OK)
        return rc;
    if (n >= 4 && memcmp(text, "BKVK", 4) == 0) {
        if (n > cap) {
            fail("the key config in %s is too long to be one", path);
            return EXIT_USAGE;
        }
        memcpy(out, text, n);
        *len = n;
        return EXIT_OK;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = text[i];
        int v;

        if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t')
            continue;
        if (ch >= '0' && ch <= '9')
            v = ch - '0';
        else if (ch >= 'a' && ch <= 'f')
            v = ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F')
            v = ch - 'A' + 10;
        else
            goto bad;
        if (hi < 0) {
            hi = v;
            continue;
        }
        if (m == cap)
            goto bad;
        out[m++] = (uint8_t)(hi << 4 | v);
        hi = -1;
    }
    if (hi >= 0 || m == 0)
        goto bad;
    *len = m;
    return EXIT_OK;
bad:
    fail("%s is not a BKV key config (neither its bytes nor hex); use the file the realm "
         "published",
         path);
    return EXIT_USAGE;
}

/*
 * Everything a vault command needs before it asks for a password: the
 * options checked, the token and key config read, the client made.
 */
static int vault_client(const struct opts *o, struct bkv_client **client)
{
    struct bkv_client_config cfg;
    uint8_t keyconfig[KEYCONFIG_MAX];
    char token[TOKEN_FILE], err[256];
    size_t token_len = 0, keyconfig_len = 0;
    int rc;

    if (o->router == NULL || o->account == NULL || o->token_file == NULL)
        return usage_error("--router, --account and --token-file are needed");
    if (o->keyconfig == NULL && o->fingerprint == NULL)
        return usage_error("give --keyconfig FILE or --fingerprint HEX: the client must know "
                           "which realm key to trust");
    rc = read_file("token file", o->token_file, 1, token, sizeof(token), &token_len);
    if (rc != EXIT_OK)
        return rc;
    trim_end(token, &token_len);
    if (o->keyconfig != NULL) {
        rc = read_keyconfig(o->keyconfig, keyconfig, sizeof(keyconfig), &keyconfig_len);
        if (rc != EXIT_OK)
            goto out;
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.router = o->router;
    cfg.token = token;
    cfg.account = o->account;
    cfg.keyconfig = o->keyconfig != NULL ? keyconfig : NULL;
    cfg.keyconfig_len = keyconfig_len;
    cfg.fingerprint = o->fingerprint;
    cfg.timeout_ms = o->timeout_s * 1000;
    err[0] = '\0';
    rc = bkv_client_new(&cfg, client, err, sizeof(err));
    if (rc != BKV_OK) {
        fail("%s", err[0] ? err : bkv_strerror(rc));
        /* The pin disagrees with itself: 6; bad values given by the person: 1. */
        if (rc == BKV_ERR_MAC)
            rc = EXIT_PIN_MISMATCH;
        else if (rc == BKV_ERR_INVALID || rc == BKV_ERR_LENGTH || rc == BKV_ERR_FORMAT)
            rc = EXIT_USAGE;
        else
            rc = EXIT_OTHER;
        goto out;
    }
    rc = EXIT_OK;
out:
    OPENSSL_cleanse(token, sizeof(token));
    return rc;
}

static void print_help(const char *head, int password)
{
    fputs(head, stdout);
    fputs(vault_options_help, stdout);
    if (password)
        fputs(password_options_help, stdout);
    fputc('\n', stdout);
    fputs(exit_codes_help, stdout);
}

static int report(const struct bkv_result *res)
{
    if (res->outcome == BKV_OUTCOME_OK)
        return EXIT_OK;
    fail("%s", res->message[0] ? res->message : "failed");
    return exit_for(res->outcome);
}

static int cmd_register(int argc, char **argv)
{
    static const int allowed[] = {OPT_KEY_FILE,   OPT_ROUTER,        OPT_ACCOUNT,
                                  OPT_TOKEN_FILE, OPT_KEYCONFIG,     OPT_FINGERPRINT,
                                  OPT_TIMEOUT,    OPT_PASSWORD_FILE, OPT_PASSWORD_STDIN};
    struct bkv_client *client = NULL;
    struct bkv_result res;
    uint8_t key[BKV_KEY_LEN];
    char password[PASSWORD_MAX + 1];
    size_t password_len = 0;
    struct opts o;
    int rc;

    memset(key, 0, sizeof(key));
    memset(password, 0, sizeof(password));
    rc = parse_opts(argc, argv, allowed, sizeof(allowed) / sizeof(allowed[0]), &o);
    if (rc != EXIT_OK || o.help) {
        if (o.help && rc == EXIT_OK)
            print_help(register_help_head, 1);
        return rc;
    }
    if (o.key_file == NULL)
        return usage_error("--key-file is needed: the key to protect");
    rc = vault_client(&o, &client);
    if (rc != EXIT_OK)
        goto out;
    rc = read_key_file(o.key_file, key);
    if (rc != EXIT_OK)
        goto out;
    rc = get_password(o.password_file, o.password_stdin, 1, password, sizeof(password),
                      &password_len);
    if (rc != EXIT_OK)
        goto out;
    bkv_register(client, (const uint8_t *)password, password_len, key, &res);
    rc = report(&res);
    if (rc == EXIT_OK)
        printf("%s\n", res.message);
out:
    bkv_client_free(client);
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(password, sizeof(password));
    return rc;
}

static int cmd_recover(int argc, char **argv)
{
    static const int allowed[] = {OPT_OUT,        OPT_ROUTER,        OPT_ACCOUNT,
                                  OPT_TOKEN_FILE, OPT_KEYCONFIG,     OPT_FINGERPRINT,
                                  OPT_TIMEOUT,    OPT_PASSWORD_FILE, OPT_PASSWORD_STDIN};
    struct bkv_client *client = NULL;
    struct bkv_result res;
    uint8_t key[BKV_KEY_LEN];
    char password[PASSWORD_MAX + 1];
    size_t password_len = 0;
    struct opts o;
    int rc, out_fd = -1;

    memset(key, 0, sizeof(key));
    memset(password, 0, sizeof(password));
    rc = parse_opts(argc, argv, allowed, sizeof(allowed) / sizeof(allowed[0]), &o);
    if (rc != EXIT_OK || o.help) {
        if (o.help && rc == EXIT_OK)
            print_help(recover_help_head, 1);
        return rc;
    }
    rc = vault_client(&o, &client);
    if (rc != EXIT_OK)
        goto out;
    /* Create --out first, so that a recovery never ends with nowhere to put the key. */
    if (o.out != NULL) {
        out_fd = create_new_file("key", o.out, &rc);
        if (out_fd < 0)
            goto out;
    }
    rc = get_password(o.password_file, o.password_stdin, 0, password, sizeof(password),
                      &password_len);
    if (rc != EXIT_OK)
        goto out;
    bkv_recover(client, (const uint8_t *)password, password_len, key, &res);
    rc = report(&res);
    if (rc != EXIT_OK)
        goto out;
    rc = output_key(key, out_fd, o.out);
    out_fd = -1; /* output_key closed it */
    if (rc == EXIT_OK && o.out != NULL)
        printf("%s; wrote the key to %s\n", res.message, o.out);
    else if (rc == EXIT_OK)
        fprintf(stderr, "%s\n", res.message);
out:
    if (out_fd >= 0) {
        close(out_fd);
        unlink(o.out);
    }
    bkv_client_free(client);
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(password, sizeof(password));
    return rc;
}

static int cmd_delete(int argc, char **argv)
{
    static const int allowed[] = {OPT_ROUTER,    OPT_ACCOUNT,     OPT_TOKEN_FILE,
                                  OPT_KEYCONFIG, OPT_FINGERPRINT, OPT_TIMEOUT};
    struct bkv_client *client = NULL;
    struct bkv_result res;
    struct opts o;
    int rc;

    rc = parse_opts(argc, argv, allowed, sizeof(allowed) / sizeof(allowed[0]), &o);
    if (rc != EXIT_OK || o.help) {
        if (o.help && rc == EXIT_OK)
            print_help(delete_help_head, 0);
        return rc;
    }
    rc = vault_client(&o, &client);
    if (rc != EXIT_OK)
        goto out;
    bkv_delete(client, &res);
    rc = report(&res);
    if (rc == EXIT_OK)
        printf("%s\n", res.message);
out:
    bkv_client_free(client);
    return rc;
}

/* --- main ----------------------------------------------------------------- */

static const char main_help[] =
    "usage: bkv COMMAND [OPTIONS]\n"
    "\n"
    "Keep a backup key safe: encrypt backups with it, and protect it in a BKV vault\n"
    "under a password, so that it can be recovered on a new device.\n"
    "\n"
    "Commands:\n"
    "  keygen     generate a new backup key\n"
    "  encrypt    encrypt a backup with a key\n"
    "  decrypt    decrypt a backup with a key\n"
    "  register   protect a key in the vault under a password\n"
    "  recover    get the key back from the vault with the password\n"
    "  delete     remove the key from the vault\n"
    "\n"
    "Run \"bkv COMMAND --help\" for the options of a command.\n"
    "\n";

int main(int argc, char **argv)
{
    static char name[64];
    const char *sub;

    if (argc < 2) {
        fputs(main_help, stderr);
        fputs(exit_codes_help, stderr);
        return EXIT_USAGE;
    }
    sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        fputs(main_help, stdout);
        fputs(exit_codes_help, stdout);
        return EXIT_OK;
    }
    snprintf(name, sizeof(name), "bkv %s", sub);
    cmd = name;
    if (strcmp(sub, "keygen") == 0)
        return cmd_keygen(argc - 1, argv + 1);
    if (strcmp(sub, "encrypt") == 0)
        return cmd_crypt(argc - 1, argv + 1, 0);
    if (strcmp(sub, "decrypt") == 0)
        return cmd_crypt(argc - 1, argv + 1, 1);
    if (strcmp(sub, "register") == 0)
        return cmd_register(argc - 1, argv + 1);
    if (strcmp(sub, "recover") == 0)
        return cmd_recover(argc - 1, argv + 1);
    if (strcmp(sub, "delete") == 0)
        return cmd_delete(argc - 1, argv + 1);
    cmd = "bkv";
    return usage_error("unknown command \"%s\"", sub);
}
