/*
 * wanmig test-guest workload.
 *
 * Runs inside the test guest (started by the initramfs /init).  Parameters
 * come from the kernel command line (/proc/cmdline):
 *
 *   wm.fill=MB       memory to fill with realistic content      (default 64)
 *   wm.wss=MB        working set rewritten in the loop          (default 8)
 *   wm.rate=N        dirty rate, pages per second (0 = none)    (default 1000)
 *   wm.hb=MS         heartbeat period in milliseconds           (default 1000)
 *   wm.src=DIR       directory with the fill corpus             (default /fill)
 *   wm.zero=PCT      percentage of zero pages in the fill       (default 15)
 *   wm.dup=PCT       percentage of duplicated pages in the fill (default 10)
 *
 * The fill content is built from the real files found under wm.src
 * (binaries, shared libraries, text), copied in runs of pages at varying
 * offsets and interleaved with zero pages, partially zero pages and
 * duplicates of earlier pages, like the memory of a real machine.  It is
 * never random bytes.
 *
 * After filling it prints "wm-ready filled=MB" and then rewrites the
 * working set forever at the given rate, changing only a few bytes per page
 * (a per-page counter at three offsets), which is what XBZRLE likes.  Every
 * wm.hb ms it prints "wm-heartbeat N" with N increasing by one.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define CORPUS_MAX (64u << 20)

struct params {
    unsigned long fill_mb;
    unsigned long wss_mb;
    unsigned long rate;
    unsigned long hb_ms;
    unsigned long zero_pct;
    unsigned long dup_pct;
    char src[256];
};

static void say(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof buf)
        n = (int)sizeof buf - 1;
    /* one write() per line so lines are not torn on the console */
    ssize_t off = 0;
    while (off < n) {
        ssize_t w = write(STDOUT_FILENO, buf + off, (size_t)(n - off));
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        off += w;
    }
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    /* xorshift64*: only used to pick layouts, never as content */
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1dull;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
    struct timespec ts = {
        .tv_sec = (time_t)(t / 1000000000ull),
        .tv_nsec = (long)(t % 1000000000ull),
    };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static void parse_cmdline(struct params *p)
{
    p->fill_mb = 64;
    p->wss_mb = 8;
    p->rate = 1000;
    p->hb_ms = 1000;
    p->zero_pct = 15;
    p->dup_pct = 10;
    snprintf(p->src, sizeof p->src, "/fill");

    char line[4096];
    int fd = open("/proc/cmdline", O_RDONLY);
    if (fd < 0) {
        say("wm-warn cannot open /proc/cmdline: %s\n", strerror(errno));
        return;
    }
    ssize_t n = read(fd, line, sizeof line - 1);
    close(fd);
    if (n <= 0)
        return;
    line[n] = '\0';

    char *save = NULL;
    for (char *tok = strtok_r(line, " \t\n", &save); tok;
         tok = strtok_r(NULL, " \t\n", &save)) {
        if (strncmp(tok, "wm.", 3) != 0)
            continue;
        char *eq = strchr(tok, '=');
        if (!eq)
            continue;
        *eq = '\0';
        const char *key = tok + 3, *val = eq + 1;
        unsigned long v = strtoul(val, NULL, 0);
        if (!strcmp(key, "fill"))
            p->fill_mb = v;
        else if (!strcmp(key, "wss"))
            p->wss_mb = v;
        else if (!strcmp(key, "rate"))
            p->rate = v;
        else if (!strcmp(key, "hb"))
            p->hb_ms = v;
        else if (!strcmp(key, "zero"))
            p->zero_pct = v > 100 ? 100 : v;
        else if (!strcmp(key, "dup"))
            p->dup_pct = v > 100 ? 100 : v;
        else if (!strcmp(key, "src"))
            snprintf(p->src, sizeof p->src, "%s", val);
    }
}

/* ---- corpus: the concatenation of the real files under p->src ---- */

static unsigned char *corpus;
static size_t corpus_len;
static unsigned corpus_files;

static void corpus_add_file(const char *path, size_t size)
{
    if (corpus_len >= CORPUS_MAX || size == 0)
        return;
    if (size > CORPUS_MAX - corpus_len)
        size = CORPUS_MAX - corpus_len;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return;
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, corpus + corpus_len + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    corpus_len += got;
    corpus_files++;
}

static void corpus_walk(const char *dir, int depth)
{
    if (depth > 8)
        return;
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char path[1024];
        int n = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (n < 0 || (size_t)n >= sizeof path)
            continue;
        struct stat st;
        if (lstat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            corpus_walk(path, depth + 1);
        else if (S_ISREG(st.st_mode))
            corpus_add_file(path, (size_t)st.st_size);
    }
    closedir(d);
}

static void corpus_load(const char *src)
{
    corpus = malloc(CORPUS_MAX);
    if (!corpus) {
        say("wm-error cannot allocate corpus buffer\n");
        exit(1);
    }
    corpus_walk(src, 0);
    if (corpus_len < 16 * PAGE) {
        /* Fall back to our own executable: still real machine code. */
        say("wm-warn corpus %s too small (%zu bytes), using /proc/self/exe\n",
            src, corpus_len);
        struct stat st;
        if (stat("/proc/self/exe", &st) == 0)
            corpus_add_file("/proc/self/exe", (size_t)st.st_size);
    }
    if (corpus_len < PAGE) {
        say("wm-error no corpus content\n");
        exit(1);
    }
}

/* ---- fill ---- */

static void fill(unsigned char *mem, size_t npages, const struct params *p)
{
    size_t i = 0;
    size_t zero = 0, dup = 0, partial = 0, copied = 0;
    while (i < npages) {
        unsigned r = (unsigned)(rng() % 100);
        size_t run = 1 + (size_t)(rng() % 32);
        if (run > npages - i)
            run = npages - i;
        if (r < p->zero_pct) {
            /* a run of zero pages (already zero: mmap'd anonymous) */
            i += run;
            zero += run;
        } else if (r < p->zero_pct + p->dup_pct && i > 0) {
            /* duplicate a run of earlier pages */
            size_t from = (size_t)(rng() % i);
            if (run > i - from)
                run = i - from;
            memcpy(mem + i * PAGE, mem + from * PAGE, run * PAGE);
            i += run;
            dup += run;
        } else {
            /* a run of corpus content; sometimes page aligned like a
             * mapped file, sometimes at a random byte offset like heap
             * copies; sometimes only partly filled like a heap page */
            size_t bytes = run * PAGE;
            size_t off;
            if (corpus_len <= bytes) {
                off = 0;
                if (bytes > corpus_len)
                    bytes = corpus_len;
            } else {
                off = (size_t)(rng() % (corpus_len - bytes));
                if (rng() & 1)
                    off &= ~(size_t)(PAGE - 1);
            }
            memcpy(mem + i * PAGE, corpus + off, bytes);
            if (r % 7 == 0) {
                size_t last = i + run - 1;
                size_t keep = (size_t)(rng() % PAGE);
                memset(mem + last * PAGE + keep, 0, PAGE - keep);
                partial++;
            }
            copied += run;
            i += run;
        }
    }
    say("wm-fill pages=%zu copied=%zu zero=%zu dup=%zu partial=%zu\n",
        npages, copied, zero, dup, partial);
}

/* ---- dirtying ---- */

static inline void dirty_page(unsigned char *pg, size_t idx, uint64_t gen)
{
    /* three 8-byte counters at page-specific offsets: a small change */
    size_t o1 = ((idx * 2654435761u) % (PAGE / 8)) * 8;
    size_t o2 = (o1 + 1352) % PAGE;
    size_t o3 = (o1 + 2904) % PAGE;
    uint64_t v = gen * 0x100000001ull + idx;
    memcpy(pg + o1, &v, sizeof v);
    v ^= 0x5a5a5a5a5a5a5a5aull;
    memcpy(pg + o2, &v, sizeof v);
    memcpy(pg + o3, &gen, sizeof gen);
}

int main(void)
{
    struct params p;
    parse_cmdline(&p);
    say("wm-start fill=%lu wss=%lu rate=%lu hb=%lu src=%s\n", p.fill_mb,
        p.wss_mb, p.rate, p.hb_ms, p.src);

    if (p.hb_ms == 0)
        p.hb_ms = 1000;
    if (p.wss_mb > p.fill_mb)
        p.wss_mb = p.fill_mb;

    uint64_t t0 = now_ns();
    corpus_load(p.src);
    say("wm-corpus files=%u bytes=%zu\n", corpus_files, corpus_len);

    size_t npages = (size_t)p.fill_mb * ((1u << 20) / PAGE);
    unsigned char *mem = NULL;
    if (npages) {
        mem = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (mem == MAP_FAILED) {
            say("wm-error mmap %lu MB: %s\n", p.fill_mb, strerror(errno));
            return 1;
        }
        /* Make sure every page is really allocated (also the zero ones,
         * which MAP_POPULATE may have mapped to the shared zero page) and
         * stays so. */
        for (size_t i = 0; i < npages; i++)
            ((volatile unsigned char *)mem)[i * PAGE] = 0;
        if (mlock(mem, npages * PAGE) != 0)
            say("wm-warn mlock: %s\n", strerror(errno));
        fill(mem, npages, &p);
    }
    uint64_t t1 = now_ns();
    say("wm-ready filled=%lu ms=%llu\n", p.fill_mb,
        (unsigned long long)((t1 - t0) / 1000000u));

    size_t wss_pages = (size_t)p.wss_mb * ((1u << 20) / PAGE);
    if (!mem)
        wss_pages = 0;

    /* Dirty in slices of 10 ms: each slice rewrites rate/100 pages
     * (carrying the remainder), walking the working set round-robin. */
    const uint64_t slice = 10000000ull;
    const uint64_t hb_ns = (uint64_t)p.hb_ms * 1000000ull;
    uint64_t next_slice = now_ns();
    uint64_t next_hb = next_slice + hb_ns;
    uint64_t hb = 0, gen = 1, credit = 0;
    size_t cursor = 0;
    for (;;) {
        uint64_t t = now_ns();
        if (t >= next_hb) {
            say("wm-heartbeat %llu\n", (unsigned long long)++hb);
            next_hb += hb_ns;
            if (next_hb <= t) /* we were stopped (e.g. migration): resync */
                next_hb = t + hb_ns;
        }
        if (wss_pages && p.rate) {
            credit += p.rate * slice; /* in page-nanoseconds */
            uint64_t n = credit / 1000000000ull;
            credit %= 1000000000ull;
            if (n > wss_pages)
                n = wss_pages;
            for (uint64_t k = 0; k < n; k++) {
                dirty_page(mem + cursor * PAGE, cursor, gen);
                if (++cursor == wss_pages) {
                    cursor = 0;
                    gen++;
                }
            }
        }
        next_slice += slice;
        if (next_slice <= t) /* fell behind (stopped or slow): no burst */
            next_slice = t + slice;
        uint64_t wake = next_slice < next_hb ? next_slice : next_hb;
        if (!(wss_pages && p.rate))
            wake = next_hb;
        sleep_until(wake);
    }
}
