/* jmp-mint-token: signs stream tokens with a keyring directory, for tests without a controller */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "keyring.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"
#include "token.h"

static void help(void) {
        printf("Usage: jmp-mint-token --keyring DIR [--create] --issuer NAME --audience AUD [--subject NAME]\n"
               "                      [--kind KIND] [--dut DUT] [--lease LEASE] [--verbs \"power serial\"]\n"
               "                      [--lifetime 10m] [--not-before +1h | --expired]\n\n"
               "Prints a token signed with the active key of the keyring directory (created with a new\n"
               "key by --create if it does not exist). A test helper, not installed.\n");
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "keyring", required_argument, NULL, 'k' },
                { "create", no_argument, NULL, 'C' },
                { "issuer", required_argument, NULL, 'i' },
                { "audience", required_argument, NULL, 'a' },
                { "subject", required_argument, NULL, 's' },
                { "kind", required_argument, NULL, 'K' },
                { "dut", required_argument, NULL, 'D' },
                { "lease", required_argument, NULL, 'L' },
                { "verbs", required_argument, NULL, 'V' },
                { "lifetime", required_argument, NULL, 't' },
                { "expired", no_argument, NULL, 'E' },
                { "not-before", required_argument, NULL, 'N' },
                {}
        };
        const char *dir = NULL;
        bool create = false, expired = false;
        uint64_t lifetime = 10 * 60 * USEC_PER_SEC, not_before = 0;
        TokenClaims c = { .sub = (char *) "test", .kind = (char *) TOKEN_KIND_STREAM,
                          .verbs = (char *) "power serial storage gpio" };
        _cleanup_(keyring_freep) Keyring *k = NULL;
        _cleanup_free_ char *error = NULL, *token = NULL;
        struct timespec ts;
        uint64_t now;
        int opt, r;

        log_setup("jmp-mint-token");
        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (opt) {
                case 'h':
                        help();
                        return 0;
                case 'k': dir = optarg; break;
                case 'C': create = true; break;
                case 'i': c.iss = optarg; break;
                case 'a': c.aud = optarg; break;
                case 's': c.sub = optarg; break;
                case 'K': c.kind = *optarg ? optarg : NULL; break;
                case 'D': c.dut = optarg; break;
                case 'L': c.lease = optarg; break;
                case 'V': c.verbs = optarg; break;
                case 'E': expired = true; break;
                case 't':
                        if (parse_duration(optarg, &lifetime) < 0)
                                return log_error_errno(EINVAL, "Invalid --lifetime %s", optarg), 2;
                        break;
                case 'N':
                        if (parse_duration(optarg[0] == '+' ? optarg + 1 : optarg, &not_before) < 0)
                                return log_error_errno(EINVAL, "Invalid --not-before %s", optarg), 2;
                        break;
                default:
                        return 2;
                }
        if (!dir || !c.iss || !c.aud)
                return log_error_errno(EINVAL, "--keyring, --issuer and --audience are required"), 2;

        r = keyring_load(dir, &k, &error);
        if (r == -ENOENT && create) {
                if (keyring_new(&k) < 0 || keyring_rotate(k, NULL) < 0 || keyring_save(k, dir) < 0)
                        return log_error_errno(EIO, "Failed to create a keyring in %s", dir), 1;
        } else if (r < 0)
                return log_error_errno(r, "Failed to load %s: %s", dir, error ?: strerror(-r)), 1;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        now = (uint64_t) ts.tv_sec * USEC_PER_SEC;
        if (expired) {
                /* Well past the verifier's leeway. */
                c.iat_usec = now - 2 * 3600 * USEC_PER_SEC;
                c.exp_usec = now - 3600 * USEC_PER_SEC;
        } else {
                c.iat_usec = now;
                c.nbf_usec = now + not_before;
                c.exp_usec = c.nbf_usec + lifetime;
        }
        r = token_issue(k, &c, &token);
        if (r < 0)
                return log_error_errno(r, "Failed to sign: %m"), 1;
        printf("%s\n", token);
        return 0;
}
