# Postern — `make run` starts the suite in a sandbox, `make test` runs every
# test (installing the Debian packages the tests drive), `make bench`
# measures, `make install` installs.

SHELL    := /bin/bash
CARGO    ?= cargo
PREFIX   ?= /usr/local
DESTDIR  ?=
SBINDIR  ?= $(PREFIX)/sbin
MANDIR   ?= $(PREFIX)/share/man
DATADIR  ?= $(PREFIX)/share/postern
SYSCONFDIR ?= /etc
LOCALSTATEDIR ?= /var
UNITDIR  ?= $(PREFIX)/lib/systemd/system
# release for a real install; debug lets the tests install what make test built
PROFILE  ?= release
# NOBUILD=1: install what is built, without running cargo first (the tests,
# whose programs must not be relinked under them)
NOBUILD  ?=
SANDBOX  ?= run
FUZZ_SECONDS ?= 60

# Debian packages the integration tests use: doveadm (real Dovecot hashes)
# mkpasswd (yescrypt as shadow writes it), mutt (a real sendmail caller);
# man and systemd-analyze check what make install installs; iproute2 (ip)
# brings up loopback in the fresh-host test's namespace.
TEST_PACKAGES  = dovecot-core dovecot-imapd isync offlineimap3 alpine whois man-db groff-base systemd iproute2 mutt swaks libnet-ssleay-perl libio-socket-ssl-perl libdigest-hmac-perl fail2ban fetchmail getmail6 nsd postfix python3-dkim python3-nacl opendkim-tools postsrsd unbound ldnsutils openssl pflogsumm
BENCH_PACKAGES = python3
# The programs, their install modes and the system users come from the
# services table, the one list postern up and the sandbox read too.
SERVICES = common/config/services.tab
services_section = awk '/^\[/ { section = $$1; next } section == "[$(1)]" && NF && !/^\#/' $(SERVICES)
PROGRAMS := $(shell $(call services_section,programs) | awk '$$4 == "0755" { print $$1 }')
# Programs installed setgid postern, and the names they also answer to.
SETGID_PROGRAMS := $(shell $(call services_section,programs) | awk '$$4 == "2755" { print $$1 }')
INJECT_LINKS = sendmail mailq
SAMPLE_CONFIG = postern.toml domains aliases accounts masquerade
UNITS = $(notdir $(wildcard etc/systemd/*.service etc/systemd/*.socket etc/systemd/*.timer))
RELAY_DIR = $(LOCALSTATEDIR)/lib/postern/relay
REMOTE_STATE_DIR = $(LOCALSTATEDIR)/lib/postern/remote
# The sample postern.toml's queue_dir and mail_root.
QUEUE_DIR = $(LOCALSTATEDIR)/spool/postern
MAIL_ROOT = $(LOCALSTATEDIR)/mail/postern
# Where cron, mutt, PHP's mail() and every other program look for
# sendmail and mailq, as Debian's MTAs provide them; made only where no
# other MTA's program is there (SENDMAIL_LINKS= to make none).
SENDMAIL_LINKS = /usr/sbin/sendmail /usr/lib/sendmail /usr/bin/mailq
# INSTALL_USERS=no: make install leaves the system users to the caller.
INSTALL_USERS ?= yes
MANPAGES = $(notdir $(wildcard docs/man/*.8))
# The system users of docs/DESIGN.md: the roles, and the mail owner.
SYSTEM_USERS := $(shell $(call services_section,users) | awk '{ print $$1 }')
SUBST = sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@LOCALSTATEDIR@|$(LOCALSTATEDIR)|g'
FUZZ_TARGETS = aliases_map accounts_map domains_map settings resolve maildir_name folder_name stored_password forward_file queue_envelope smtp_session masquerade_map queue_records auth_request sasl_exchange pop3_session message_id smtp_client mta_sts srs_address downgrade uid_list imap_session imap_index imap_mime

.PHONY: all build release run test lint bench fuzz install install-users uninstall clean

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

# cargo-machete: a dependency no code of its crate uses fails the lint.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	cargo machete --help >/dev/null 2>&1 || $(CARGO) install --locked cargo-machete
	cargo machete

bench: release
	scripts/ensure-packages $(BENCH_PACKAGES)
	python3 scripts/bench-local.py
	python3 scripts/bench-queue.py
	python3 scripts/bench-smtp.py
	python3 scripts/bench-pop3.py
	python3 scripts/bench-imap.py
	python3 scripts/bench-remote.py

fuzz:
	cargo fuzz --help >/dev/null 2>&1 || $(CARGO) install cargo-fuzz
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		mkdir -p corpus/$$t && cp seeds/$$t/* corpus/$$t/ && \
		RUSTC_BOOTSTRAP=1 cargo fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

# As root on the host itself (no DESTDIR), the system users come first,
# so that the setgid bit and every owner below can be set; a package
# (DESTDIR) makes them in its own scripts.
install: $(if $(NOBUILD),,$(if $(filter debug,$(PROFILE)),build,release))
	if [ -z "$(DESTDIR)" ] && [ "$(INSTALL_USERS)" = yes ] && [ "$$(id -u)" = 0 ]; then \
		$(MAKE) --no-print-directory install-users; fi
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DATADIR) \
		$(DESTDIR)$(SYSCONFDIR)/postern $(DESTDIR)$(UNITDIR)
	for p in $(PROGRAMS); do install -m 0755 target/$(PROFILE)/$$p $(DESTDIR)$(SBINDIR)/$$p; done
	# The setgid bit needs the postern group (make install-users); without
	# it the program is installed plain and says so.
	for p in $(SETGID_PROGRAMS); do \
		if getent group postern >/dev/null; then install -m 2755 -g postern target/$(PROFILE)/$$p $(DESTDIR)$(SBINDIR)/$$p; \
		else echo "warning: no group postern (make install-users): $$p installed without its setgid bit"; fi; \
	done
	# sendmail and mailq beside it, unless another MTA's are there (a
	# PREFIX of /usr puts them where Debian's MTAs keep theirs).
	for l in $(INJECT_LINKS); do t=$(DESTDIR)$(SBINDIR)/$$l; \
		if { [ ! -e $$t ] && [ ! -L $$t ]; } || [ "$$(readlink $$t)" = postern-inject ]; then ln -sfn postern-inject $$t; \
		else echo "note: $$t belongs to another MTA; left alone"; fi; \
	done
	# sendmail where programs look for it, unless another MTA's is there.
	for l in $(SENDMAIL_LINKS); do \
		target=$(SBINDIR)/postern-inject; [ $${l##*/} = mailq ] && target=$(SBINDIR)/mailq; \
		if [ -e $(DESTDIR)$$l ] || [ -L $(DESTDIR)$$l ]; then \
			case "$$(readlink $(DESTDIR)$$l)" in $(SBINDIR)/postern-inject|$(SBINDIR)/mailq|postern-inject) ln -sfn $$target $(DESTDIR)$$l ;; \
			*) echo "note: $$l belongs to another MTA; left alone (Postern's is $(SBINDIR)/sendmail)" ;; esac; \
		else install -d $(DESTDIR)$${l%/*} && ln -s $$target $(DESTDIR)$$l; fi; \
	done
	# The queue (the queue manager's, its subdirectories the injectors'
	# group's) and the mail root (the mail owner's), as docs/QUEUE.md and
	# docs/DESIGN.md fix them; left to root where the users do not exist.
	install -d $(DESTDIR)$(QUEUE_DIR) $(DESTDIR)$(MAIL_ROOT)
	if getent passwd postern >/dev/null && getent passwd postern-mail >/dev/null && [ "$$(id -u)" = 0 ]; then \
		chown postern:postern $(DESTDIR)$(QUEUE_DIR) && chmod 0750 $(DESTDIR)$(QUEUE_DIR) && \
		install -d -o postern -g postern -m 2770 $(DESTDIR)$(QUEUE_DIR)/tmp $(DESTDIR)$(QUEUE_DIR)/queue && \
		install -d -o postern -g postern -m 2750 $(DESTDIR)$(QUEUE_DIR)/state && \
		{ [ -p $(DESTDIR)$(QUEUE_DIR)/trigger ] || mkfifo -m 0620 $(DESTDIR)$(QUEUE_DIR)/trigger; } && \
		chown postern:postern $(DESTDIR)$(QUEUE_DIR)/trigger && chmod 0620 $(DESTDIR)$(QUEUE_DIR)/trigger && \
		chown postern-mail:postern-mail $(DESTDIR)$(MAIL_ROOT) && chmod 0750 $(DESTDIR)$(MAIL_ROOT); \
	else echo "warning: no users postern and postern-mail (make install-users): $(QUEUE_DIR) and $(MAIL_ROOT) left to root"; fi
	# The relayers file: its directory is the postern-relay group's to
	# write (postern-auth keeps that group); the tool is for root and the
	# group's members only, since an added IP may relay.
	install -d $(DESTDIR)$(RELAY_DIR)
	if getent group postern-relay >/dev/null && [ "$$(id -u)" = 0 ]; then \
		chgrp postern-relay $(DESTDIR)$(RELAY_DIR) $(DESTDIR)$(SBINDIR)/postern-relay && \
		chmod 2775 $(DESTDIR)$(RELAY_DIR) && chmod 0750 $(DESTDIR)$(SBINDIR)/postern-relay; \
	else echo "warning: no group postern-relay (make install-users): $(RELAY_DIR) left to root"; fi
	# postern-remote's own directory (the MTA-STS policy cache): its alone.
	install -d $(DESTDIR)$(REMOTE_STATE_DIR)
	if getent passwd postern-remote >/dev/null && [ "$$(id -u)" = 0 ]; then \
		chown postern-remote:postern-remote $(DESTDIR)$(REMOTE_STATE_DIR) && chmod 0700 $(DESTDIR)$(REMOTE_STATE_DIR); \
	else echo "warning: no user postern-remote (make install-users): $(REMOTE_STATE_DIR) left to root"; fi
	$(SUBST) etc/cron.d/postern-relay > $(DESTDIR)$(DATADIR)/cron.d-postern-relay
	install -m 0644 etc/fail2ban/postern.conf $(DESTDIR)$(DATADIR)/fail2ban-postern.conf
	install -m 0644 etc/fail2ban/filter.d/postern-login.conf $(DESTDIR)$(DATADIR)/fail2ban-filter-postern-login.conf
	for m in $(MANPAGES); do install -m 0644 docs/man/$$m $(DESTDIR)$(MANDIR)/man8/$$m; done
	for u in $(UNITS); do $(SUBST) etc/systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u; chmod 0644 $(DESTDIR)$(UNITDIR)/$$u; done
	$(SUBST) etc/inetd.conf > $(DESTDIR)$(DATADIR)/inetd.conf
	# Samples go beside the config, and into it where nothing is there yet.
	for f in $(SAMPLE_CONFIG); do \
		mode=0644; [ $$f = accounts ] && mode=0600; \
		install -m $$mode etc/$$f $(DESTDIR)$(DATADIR)/$$f.sample; \
		if [ ! -e $(DESTDIR)$(SYSCONFDIR)/postern/$$f ]; then \
			install -m $$mode etc/$$f $(DESTDIR)$(SYSCONFDIR)/postern/$$f; \
			echo $$f >> $(DESTDIR)$(DATADIR)/installed-config; \
		fi; \
	done
	# postern-auth reads the accounts file: its group, read-only.
	if getent group postern-auth >/dev/null && [ "$$(id -u)" = 0 ]; then \
		chgrp postern-auth $(DESTDIR)$(SYSCONFDIR)/postern/accounts && \
		chmod 0640 $(DESTDIR)$(SYSCONFDIR)/postern/accounts; \
	fi

# The system users and groups of docs/DESIGN.md, without logins or homes;
# users that exist are left as they are.
install-users:
	for u in $(SYSTEM_USERS); do \
		getent group $$u >/dev/null || groupadd --system $$u; \
		getent passwd $$u >/dev/null || useradd --system --gid $$u --no-create-home \
			--home-dir /nonexistent --shell /usr/sbin/nologin --comment "Postern $$u" $$u; \
	done

# Removes what install installed; config files it did not place, or that
# were changed since, stay.
uninstall:
	for p in $(PROGRAMS) $(SETGID_PROGRAMS); do rm -f $(DESTDIR)$(SBINDIR)/$$p; done
	# Links only where they are Postern's.
	for l in $(INJECT_LINKS); do \
		[ "$$(readlink $(DESTDIR)$(SBINDIR)/$$l)" = postern-inject ] && rm -f $(DESTDIR)$(SBINDIR)/$$l; \
	done; true
	for l in $(SENDMAIL_LINKS); do \
		case "$$(readlink $(DESTDIR)$$l)" in $(SBINDIR)/postern-inject|$(SBINDIR)/mailq) rm -f $(DESTDIR)$$l ;; esac; \
	done
	# The queue and the mail root are data: they go only if empty.
	q=$(DESTDIR)$(QUEUE_DIR); if [ -d $$q ] && [ -z "$$(find $$q/tmp $$q/queue $$q/state -mindepth 1 -print -quit 2>/dev/null)" ]; then \
		rm -rf -- $$q/tmp $$q/queue $$q/state $$q/trigger && rmdir $$q; fi
	rmdir $(DESTDIR)$(MAIL_ROOT) 2>/dev/null; true
	for m in $(MANPAGES); do rm -f $(DESTDIR)$(MANDIR)/man8/$$m; done
	for u in $(UNITS); do rm -f $(DESTDIR)$(UNITDIR)/$$u; done
	rm -f $(DESTDIR)$(DATADIR)/inetd.conf $(DESTDIR)$(DATADIR)/cron.d-postern-relay \
		$(DESTDIR)$(DATADIR)/fail2ban-postern.conf $(DESTDIR)$(DATADIR)/fail2ban-filter-postern-login.conf
	# The relayers file is data: its directory goes only if empty.
	rmdir $(DESTDIR)$(RELAY_DIR) $(DESTDIR)$(REMOTE_STATE_DIR) $(DESTDIR)$(LOCALSTATEDIR)/lib/postern 2>/dev/null; true
	# Only config files install put there, and only while unchanged.
	if [ -f $(DESTDIR)$(DATADIR)/installed-config ]; then \
		for f in $$(cat $(DESTDIR)$(DATADIR)/installed-config); do \
			cmp -s etc/$$f $(DESTDIR)$(SYSCONFDIR)/postern/$$f && rm -f $(DESTDIR)$(SYSCONFDIR)/postern/$$f; \
		done; \
		rm -f $(DESTDIR)$(DATADIR)/installed-config; \
	fi; true
	for f in $(SAMPLE_CONFIG); do rm -f $(DESTDIR)$(DATADIR)/$$f.sample; done
	rmdir $(DESTDIR)$(DATADIR) $(DESTDIR)$(SYSCONFDIR)/postern 2>/dev/null; true

clean:
	$(CARGO) clean
