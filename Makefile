# Postern — `make run` starts the suite in a sandbox, `make test` runs every
# test (installing the Debian packages the tests drive), `make bench`
# measures, `make install` installs.

SHELL    := /bin/bash
CARGO    ?= cargo
PREFIX   ?= /usr/local
DESTDIR  ?=
SANDBOX  ?= run
FUZZ_SECONDS ?= 60

# Debian packages the integration tests use: doveadm (real Dovecot hashes)
# and mkpasswd (yescrypt as shadow writes it).
TEST_PACKAGES  = dovecot-core whois
BENCH_PACKAGES = python3
PROGRAMS = postern postern-admin postern-local
FUZZ_TARGETS = aliases_map accounts_map domains_map settings resolve maildir_name folder_name stored_password

.PHONY: all build release run test lint bench fuzz install clean

all: build

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --workspace --release

run: build
	target/debug/postern up --dir $(SANDBOX)

test:
	scripts/ensure-packages $(TEST_PACKAGES)
	$(CARGO) build --workspace
	set -o pipefail; $(CARGO) test --workspace 2>&1 | tee target/test.log
	@awk '/^test result:/ { p += $$4; f += $$6; s += $$8 } \
		END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' target/test.log

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

bench: release
	scripts/ensure-packages $(BENCH_PACKAGES)
	python3 scripts/bench-local.py

fuzz:
	cargo fuzz --help >/dev/null 2>&1 || $(CARGO) install cargo-fuzz
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		mkdir -p corpus/$$t && cp seeds/$$t/* corpus/$$t/ && \
		RUSTC_BOOTSTRAP=1 cargo fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

install: release
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/postern/etc
	for p in $(PROGRAMS); do install -m 0755 target/release/$$p $(DESTDIR)$(PREFIX)/sbin/$$p; done
	install -m 0644 etc/postern.toml etc/domains etc/aliases $(DESTDIR)$(PREFIX)/share/postern/etc/
	install -m 0600 etc/accounts $(DESTDIR)$(PREFIX)/share/postern/etc/

clean:
	$(CARGO) clean
