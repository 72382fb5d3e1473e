/*
 * The election protocol of the elector (issue 9) as a Promela model, as the
 * code does it: campaign.go (decide, acquire: a create is held a lease
 * duration, then taken by compare-and-swap) and leadership.go (observe,
 * seeRead, seeMissing: the deadline chain).  model/README.md explains the
 * abstraction, the time discretisation and every switch; scripts/spin.sh
 * runs the checks.
 *
 * Real time is a global tick (proctype Clock).  Between two ticks the
 * processes take any number of atomic steps, in any order: the order of the
 * steps inside one tick interval is their order in real time.
 *
 * Ghost state: work[i] is true while elector i's work (lead) runs.  The
 * invariant "never two working at once" is asserted at the one place where
 * work starts (an overlap can only begin there).
 *
 * Versions are not numbers in the model: every use of a version in the
 * protocol is a comparison with the store's current version (a CAS
 * precondition, "is this newer than what I saw", "is this my last write"),
 * and versions only grow, so each remembered version is one bit: "still the
 * current one".  Every change of the store clears all of them.  The number of
 * writes is therefore unbounded (histories of any length) and the state
 * space finite; this is what makes liveness checkable.  -DMAXW=n bounds the
 * writes instead, for quicker runs.
 */

#ifndef N
#define N 2                 /* electors; identities 1..N */
#endif
#define STRANGER (N+1)      /* a holder name that no elector has */

/* Durations, in model time units (ticks). */
#ifndef LONG
#define LONG  3             /* every elector's configured leaseDuration */
#endif
#define SHORT 2             /* an operator's hand-edited duration */
#define RELD  1             /* the release's leaseDuration ("1s") */
#define LATE  1             /* timer lateness: work stops <= LATE ticks after the cancel */
#ifdef BUG_NO_MARGIN
#define MARGIN 0            /* fix 4 reverted: cancel exactly at validity end */
#else
#define MARGIN LATE         /* endMargin >= timer lateness */
#endif
/* Leader validity in ticks, L*(1-maxDrift): a follower's countdown of L
 * lasts L-1 ticks at least (a fast clock), and a follower may act in the
 * same tick interval as the leader's last one, so the leader's last
 * working interval must end one tick before: L-2. */
#define VT    (LONG - 2)
/* Ticks the leader may still cross while working, counted from the send of
 * its last successful write: cancel at VT-MARGIN, stop within LATE. */
#define HS0   (VT - MARGIN + LATE)

#ifndef OPS
#define OPS 2               /* operator actions */
#endif
#ifndef DELS
#define DELS 1              /* of which at most DELS deletions */
#endif

#define max(a, b) ((a) > (b) -> (a) : (b))

/* ---------------------------------------------------------------- store */
bool sx;      /* the record exists */
byte sh;      /* holder: 0 none, 1..N electors, STRANGER */
byte sd;      /* leaseDuration */
byte si;      /* instance: the process that wrote (an annotation, kept by hand edits) */
bool sr;      /* released mark (the token of the term released; never forged) */
byte sp;      /* preferredHolder: 0 none */
/* Content written by someone other than the holder's process: 0 none (an
 * elector's own write, or a label since), 1 a protocol field edited (duration,
 * holder), 2 only preferredHolder set (a handover request).  This stands for
 * "the record is exactly one of the writer's own writes", which the real code
 * decides by comparing the protocol content (renewTime included). */
byte sed;
/* The record was written by a create (and not replaced since): its creator
 * holds it and never counts it as its own write (campaign.go, acquire). */
bool scr;
/* The version, and the token of each elector's last successful write, for
 * the trails' narration only: not state (hidden), unless -DVNUM (breadth-first
 * searches allow no hidden variable; then bound the writes with -DMAXW). */
#ifdef VNUM
byte hv;
byte ht[N];
#else
hidden byte hv;
hidden byte ht[N];
#endif
#ifdef MAXW
byte nw;            /* store changes so far (-DMAXW bounds them) */
#define ROOM (nw < MAXW)
#else
#define ROOM 1
#endif

/* --------------------------------------------------------------- electors */
#define CAND 0
#define LEAD 1
#define STOP 2      /* term ended, waiting for the work to return */
#define REL  3      /* work returned; release to write */
#define RELW 4      /* release sent */

byte mode[N];
bool work[N];       /* ghost: the work of the term runs */
byte hs[N];         /* leader: ticks it may still cross while working */
bool lc[N];         /* the version of the last confirmed (or adopted) write is current */
bool vol[N];        /* the term ends voluntarily: release after the work returned */

/* observation and the follower's deadline chain */
#define OUNK  0     /* nothing seen */
#define ODEL  1     /* seen deleted */
#define OFREE 2     /* a marked release: take at once */
#define OOWN  3     /* exactly one of this process's writes (labels aside) */
#define OHELD 4     /* held by someone else, an unmarked empty holder, or our own create */
byte ok[N];
bool oc[N];         /* the version observed is current */
bool occ[N];        /* the content observed is current (only labels since) */
byte hu[N];         /* heldUntil - now, in ticks (0: passed) */
byte man[N];        /* maxAnnounced since the chain was last cleared */
bool pv[N];         /* the deletion came right after the version observed (a watch event) */
#ifdef BUG_BACKWARDS
bool back[N];       /* the store went back below the version observed */
#endif

/* the write in flight (one per elector) */
#define WNONE 0
#define WSENT 1
#define WOK   2     /* applied; the answer is on its way */
#define WFAIL 3     /* refused (CAS); the answer is on its way */
byte ws[N];
bool wc[N];         /* a create (precondition: no record) rather than a CAS update */
bool wbc[N];        /* its base version (CAS precondition) is current */
bool wrel[N];       /* a release (holder "", marked) rather than holder = self */
byte wv[N];         /* 1 + the ticks a leader may still cross while working if this
                     * write succeeds, counting down from its send; 0: too late */
bool wrc[N];        /* the version it produced is current */

/* a write the elector gave up on, which may still be applied (late); a
 * compare-and-swap only while its base is current, so it is dropped at the
 * next change of the store */
bool os[N];
bool ocr[N];        /* it is a create */
bool orel[N];

#ifdef LIVENESS
/* Backoff: once healed, a candidate whose write was refused tries again only
 * after the next tick (RetryPeriod; campaign.go backs off on a conflict).
 * Without it a refused compare-and-swap could be retried forever within one
 * tick, a run in which time never passes. */
bool bo[N];
#define READY(i) (!bo[i])
#else
#define READY(i) 1
#endif

byte ops = 0;       /* operator actions taken */
byte dels = 0;
bool healed = 0;    /* liveness: no more faults from here on */

/* ---------------------------------------------------------- helpers */

/* heldUntil = max(heldUntil, now + d) measured on the elector's own clock,
 * which runs fast by as much as the drift bound allows: the countdown lasts
 * d-1 ticks.  A slower clock would only make the elector act later, and
 * nothing in the model forces an elector to act when it may: every later
 * action is explored anyway. */
inline extend(i, d) {
	hu[i] = max(hu[i], d - 1)
}

#ifdef BUG_NO_HOLD
#define CREATED 0           /* the hold reverted: a create is a write like any other */
#else
#define CREATED scr
#endif

/* The record is exactly one of elector i's writes, but perhaps for a label
 * (the candidate's "mine", isMine). */
#define OWNREC(i) (sx && sh == (i)+1 && si == (i)+1 && sed == 0 && !CREATED)
/* A leader's judge: its own write, a label, or a handover request on it. */
#ifdef BUG_ADOPT_EDIT
#define MINE(i) (sx && sh == (i)+1 && si == (i)+1 && !CREATED)
#else
#define MINE(i) (sx && sh == (i)+1 && si == (i)+1 && sed != 1 && !CREATED)
#endif

/* A leader i reads or watches the record: anything that is not its own
 * write ends the term. */
inline judge(i) {
	if
	:: !sx -> mode[i] = STOP; vol[i] = 0; printf("e%d (leader) stops: deleted\n", i+1)
	:: sx && !lc[i] && MINE(i) && sp == 0 ->
		lc[i] = 1;                                  /* own (late) write or a label */
		printf("e%d (leader) adopts v%d\n", i+1, hv)
	:: sx && !lc[i] && MINE(i) && sp != 0 ->
		/* a handover request: end voluntarily, release naming the successor */
		lc[i] = 1; mode[i] = STOP; vol[i] = 1;
		printf("e%d (leader) handover to %d: stops\n", i+1, sp)
	:: sx && !lc[i] && !MINE(i) -> mode[i] = STOP; vol[i] = 0;
		printf("e%d (leader) stops: v%d is not its write\n", i+1, hv)
	:: else -> skip
	fi
}

#ifdef BUG_BACKWARDS
#define IGNORED(i) back[i]  /* a read of an older version than seen is dropped */
#else
#define IGNORED(i) 0        /* a read is current when served: a lower version is new */
#endif
#ifdef READ_EXTENDS
#define REREAD(i) (hu[i] < max(LONG, man[i]) - 1)
#else
#define REREAD(i) 0
#endif
/* A read (or watch event) would change elector i's observation. */
#define NEWS(i) ((sx && !IGNORED(i) && (ok[i] == OUNK || ok[i] == ODEL || !oc[i])) || \
	(!sx && ok[i] != ODEL) || (!sx && ok[i] == ODEL && REREAD(i)))

/* The follower's view: a read (or watch event) of the current record
 * (observe, seeRead, seeMissing). */
inline see(i) {
	if
	:: sx && !IGNORED(i) && (ok[i] == OUNK || ok[i] == ODEL || !oc[i]) ->
		oc[i] = 1;
		if
		:: occ[i] ->
			/* metadata only (a label): the countdown goes on from when
			 * the content was first seen */
			printf("e%d sees v%d: a label, same content\n", i+1, hv)
		:: else ->
			occ[i] = 1;
			printf("e%d sees v%d holder=%d dur=%d inst=%d rel=%d pref=%d created=%d\n", i+1, hv, sh, sd, si, sr, sp, scr);
			if
			:: sh == 0 && sr ->
				/* a marked release: the holder's work has returned */
				ok[i] = OFREE; hu[i] = 0;
#ifdef HOLE_NO_FLOOR
				man[i] = 0
#else
				man[i] = LONG
#endif
			:: else ->
#ifdef BUG_SHORTER
				man[i] = sd;              /* count the current record's duration */
#else
				man[i] = max(man[i], sd);
#endif
				if
				:: OWNREC(i) -> ok[i] = OOWN
				:: else -> ok[i] = OHELD
				fi;
#ifdef BUG_EMPTY_AT_ONCE
				if
				:: sh == 0 -> ok[i] = OFREE     /* any empty holder taken at once */
				:: else -> t = man[i]; extend(i, t)
				fi
#elif defined(HOLE_EMPTY_NO_COUNT)
				if
				:: sh != 0 -> t = man[i]; extend(i, t) /* protocol-v2 as written */
				:: else -> skip
				fi
#else
				t = man[i]; extend(i, t)
#endif
			fi
		fi
	:: else ->
		if
		:: !sx && ok[i] != ODEL ->
			/* a read that finds nothing: the deletion's version is
			 * unknown; the chain stands (the create that follows is
			 * held a lease duration) */
			printf("e%d reads: not found\n", i+1);
			ok[i] = ODEL; occ[i] = 0;
#ifdef READ_EXTENDS
			t = max(LONG, man[i]); extend(i, t)
#endif
		:: !sx && ok[i] == ODEL && REREAD(i) ->
			/* READ_EXTENDS: every read that finds nothing counts from now */
			printf("e%d reads: not found, again\n", i+1);
			t = max(LONG, man[i]); extend(i, t)
		:: else -> skip       /* nothing new, or a read dropped */
		fi
	fi;
	t = 0
}

/* A deletion event from a complete watch (the elector saw the last record
 * before the deletion, and no version was missed): the chain stands. */
inline seeDeleteWatch(i) {
	printf("e%d watch: deleted\n", i+1);
	ok[i] = ODEL; occ[i] = 0; pv[i] = 0;
	oc[i] = 1
}

/* Send a write. */
inline send(i, create, basecur, rel) {
	printf("e%d sends a write (create=%d release=%d)\n", i+1, create, rel);
	ws[i] = WSENT; wc[i] = create; wbc[i] = basecur; wrel[i] = rel;
	wv[i] = HS0 + 1
}

/* Every change of the store: remembered versions are no longer current, and
 * a late compare-and-swap can never be applied any more. */
inline bump() {
	hv++;
#ifdef MAXW
	nw++;
#endif
	k = 0;
	do
	:: k < N ->
		oc[k] = 0; lc[k] = 0; wbc[k] = 0; wrc[k] = 0; pv[k] = 0;
		if :: os[k] && !ocr[k] -> os[k] = 0; orel[k] = 0 :: else -> skip fi;
#ifdef BUG_BACKWARDS
		/* later writes may carry the store past the version seen */
		if :: back[k] -> back[k] = 0 :: back[k] -> skip :: else -> skip fi;
#endif
		k++
	:: else -> break
	od;
	k = 0
}

/* Apply an elector's write (the caller checked the precondition). */
inline apply(i, rel, create) {
	bump();
	sx = 1; si = (i)+1; sp = 0; sed = 0; scr = create;
	if :: rel -> sh = 0; sr = 1; sd = RELD :: else -> sh = (i)+1; sr = 0; sd = LONG fi;
	k = 0;
	do
	:: k < N -> occ[k] = 0; k++
	:: else -> break
	od;
	k = 0;
	printf("store: e%d's write (create=%d release=%d) applied as v%d\n", i+1, create, rel, hv)
}

#ifdef BUG_LATE_START
#define INTIME(i) 1         /* work starts whenever the answer arrives */
#else
#define INTIME(i) (wv[i] > 0)
#endif
#define CASOK(i) ((wc[i] && !sx) || (!wc[i] && sx && wbc[i]))

/* ------------------------------------------------------------- elector */

proctype Elector(byte i) {
	byte j, t, k;
end:
	do
	/* ---- observe (a read, or a watch event); a leader judges what it sees */
	:: atomic { NEWS(i) || (mode[i] == LEAD && (!sx || !lc[i])) ->
		see(i); if :: mode[i] == LEAD -> judge(i) :: else -> skip fi }
	:: atomic { !sx && ok[i] != ODEL && ok[i] != OUNK && pv[i] ->
		seeDeleteWatch(i); if :: mode[i] == LEAD -> judge(i) :: else -> skip fi }

	/* ---- candidate: decide and send */
	:: atomic { mode[i] == CAND && ws[i] == WNONE && READY(i) && ok[i] == ODEL && hu[i] == 0 ->
		send(i, 1, 0, 0) }
	:: atomic { mode[i] == CAND && ws[i] == WNONE && READY(i) && (ok[i] == OFREE || ok[i] == OOWN ||
		(ok[i] == OHELD && hu[i] == 0)) -> send(i, 0, oc[i], 0) }

	/* ---- the network: apply the write in flight (or refuse it) */
	:: atomic { ws[i] == WSENT && ROOM ->
		if
		:: CASOK(i) -> apply(i, wrel[i], wc[i]); wrc[i] = 1; ws[i] = WOK; ht[i] = hv
		:: else -> ws[i] = WFAIL; printf("store: e%d's write refused\n", i+1)
		fi }
	/* ... or the elector gives up on it (timeout, lost request or answer):
	 * if not applied yet it may still be applied later (a compare-and-swap
	 * only if its base is still current) */
	:: atomic { !healed && ws[i] != WNONE ->
		if
		:: ws[i] == WSENT && (wc[i] || wbc[i]) ->
			printf("e%d gives up on its write (it may land later)\n", i+1);
			os[i] = 1; ocr[i] = wc[i]; orel[i] = wrel[i]
		:: ws[i] == WSENT && !wc[i] && !wbc[i] ->
			printf("e%d gives up on its write (it can never land)\n", i+1)
		:: else -> printf("e%d: the answer is lost\n", i+1)
		fi;
		ws[i] = WNONE; wc[i] = 0; wbc[i] = 0; wrel[i] = 0; wv[i] = 0; wrc[i] = 0;
		if :: mode[i] == RELW -> mode[i] = CAND :: else -> skip fi }
	/* a late write applied */
	:: atomic { os[i] && ROOM && ((ocr[i] && !sx) || (!ocr[i] && sx)) ->
		printf("late write of e%d:\n", i+1);
		t = orel[i]; j = ocr[i]; os[i] = 0; ocr[i] = 0; orel[i] = 0;
		apply(i, t, j); t = 0; j = 0 }

	/* ---- the answer arrives */
	:: atomic { ws[i] == WOK ->
		if
#ifndef BUG_NO_HOLD
		:: mode[i] == CAND && wc[i] ->
			/* a create is no compare-and-swap: held, not led, for a
			 * lease duration; then taken by compare-and-swap */
			printf("e%d created the lock (v%d): holds it a lease duration before leading\n", i+1, ht[i])
		:: mode[i] == CAND && !wc[i] && !INTIME(i) ->
#else
		:: mode[i] == CAND && !INTIME(i) ->
#endif
			/* the answer came after the validity it would give: no work */
			printf("e%d acquired, but too late to work\n", i+1)
#ifndef BUG_NO_HOLD
		:: mode[i] == CAND && !wc[i] && INTIME(i) ->
#else
		:: mode[i] == CAND && INTIME(i) ->
#endif
			/* the acquisition succeeded: a new term, validity from the send */
			mode[i] = LEAD; lc[i] = wrc[i]; vol[i] = 0;
			hs[i] = (wv[i] > 0 -> wv[i] - 1 : 0);
			printf("e%d LEADS (token v%d), may work %d more ticks: WORK STARTS\n", i+1, ht[i], hs[i]);
			/* THE INVARIANT: no two electors work at once */
			j = 0;
			do
			:: j < N -> assert(j == i || !work[j]); j++
			:: else -> break
			od;
			j = 0;
			work[i] = 1
		:: mode[i] == LEAD ->
			/* a renewal: extend validity from its send */
			t = (wv[i] > 0 -> wv[i] - 1 : 0);
			hs[i] = max(hs[i], t); lc[i] = wrc[i];
			printf("e%d renewed, may work %d more ticks\n", i+1, hs[i])
		:: mode[i] == STOP || mode[i] == REL -> lc[i] = wrc[i]
		:: mode[i] == RELW -> mode[i] = CAND; printf("e%d released\n", i+1)
		fi;
		ws[i] = WNONE; wc[i] = 0; wbc[i] = 0; wrel[i] = 0; wv[i] = 0; wrc[i] = 0; t = 0;
		see(i) }
	/* a refusal: re-read, and judge what is there */
	:: atomic { ws[i] == WFAIL ->
		ws[i] = WNONE; wc[i] = 0; wbc[i] = 0; wrel[i] = 0; wv[i] = 0; wrc[i] = 0;
		see(i);
		if
		:: mode[i] == LEAD -> judge(i)
		:: mode[i] == RELW -> mode[i] = CAND     /* not ours any more: nothing to release */
		:: else -> skip
		fi;
#ifdef LIVENESS
		if :: healed && mode[i] == CAND -> bo[i] = 1 :: else -> skip fi
#endif
		}

	/* ---- leader */
	:: atomic { mode[i] == LEAD && ws[i] == WNONE -> send(i, 0, lc[i], 0) }   /* renew */
	:: atomic { mode[i] == LEAD -> mode[i] = STOP; vol[i] = 1;   /* work returns / resign */
		printf("e%d resigns: work cancelled (still running until it returns)\n", i+1) }
	:: atomic { mode[i] == LEAD && hs[i] <= LATE -> mode[i] = STOP; vol[i] = 0;  /* the validity timer */
		printf("e%d validity timer: cancel\n", i+1) }
	:: atomic { mode[i] == STOP -> work[i] = 0; hs[i] = 0; printf("e%d WORK RETURNED\n", i+1);
		if :: vol[i] -> mode[i] = REL :: else -> mode[i] = CAND; lc[i] = 0 fi }  /* the work has returned */
	:: atomic { mode[i] == REL && ws[i] == WNONE ->
		/* the marked release, after the work returned */
		send(i, 0, lc[i], 1); mode[i] = RELW; lc[i] = 0 }
	od
}

/* ------------------------------------------------------------ operator */

/* Every operator write keeps the annotations (instance) of the record it
 * edits, as kubectl edit or a read-modify-write client does. */
inline edited() {
	k = 0;
	do
	:: k < N -> occ[k] = 0; k++
	:: else -> break
	od;
	k = 0
}

active proctype Operator() {
	byte k;
end:
	do
	:: atomic { !healed && ops < OPS && sx && ROOM && sh != 0 && sd != SHORT -> bump(); edited(); sd = SHORT; sed = 1; ops++;
		printf("OPERATOR edits the duration to %d: v%d\n", SHORT, hv) }
	:: atomic { !healed && ops < OPS && sx && ROOM && sh != 0 -> bump(); edited(); sh = 0; sed = 1; ops++;
		printf("OPERATOR empties the holder (no release mark): v%d\n", hv) }
	:: atomic { !healed && ops < OPS && sx && ROOM && sh != STRANGER -> bump(); edited(); sh = STRANGER; sed = 1; ops++;
		printf("OPERATOR sets holder %d: v%d\n", STRANGER, hv) }
	:: atomic { !healed && ops < OPS && sx && ROOM && sh != 0 && sp == 0 -> bump(); edited(); sp = 1 + (sh % N);
		if :: sed == 0 -> sed = 2 :: else -> skip fi; ops++;
		printf("OPERATOR asks for a handover to %d: v%d\n", sp, hv) }
	:: atomic { !healed && ops < OPS && sx && ROOM -> bump(); ops++;
		printf("OPERATOR adds a label: v%d\n", hv) }
	:: atomic { !healed && ops < OPS && dels < DELS && sx && ROOM ->
		k = 0;
		do
		:: k < N -> pv[k] = oc[k]; k++   /* who saw the version before the deletion */
		:: else -> break
		od;
		k = 0;
		hv++;
#ifdef MAXW
		nw++;
#endif
		do
		:: k < N ->
			oc[k] = 0; lc[k] = 0; wbc[k] = 0; wrc[k] = 0; occ[k] = 0;
			if :: os[k] && !ocr[k] -> os[k] = 0; orel[k] = 0 :: else -> skip fi;
			k++
		:: else -> break
		od;
		k = 0;
		sx = 0; sh = 0; sd = 0; si = 0; sr = 0; sp = 0; sed = 0; scr = 0; ops++; dels++;
		printf("OPERATOR deletes: v%d\n", hv) }
#ifdef RESTORE
	/* etcd restored from a backup taken before all this: the record of an
	 * old holder (dead), at a version lower than any seen since */
	:: atomic { !healed && ops < OPS && ROOM ->
		k = 0;
		do
		:: k < N ->
#ifdef BUG_BACKWARDS
			back[k] = (ok[k] != OUNK);
#endif
			k++
		:: else -> break
		od;
		k = 0;
		bump(); edited();
		sx = 1; sh = STRANGER; sd = LONG; si = STRANGER; sr = 0; sp = 0; sed = 0; scr = 0; ops++;
		printf("OPERATOR restores etcd from a backup: holder %d, a version lower than any seen\n", STRANGER) }
#endif
#ifdef LIVENESS
	/* from here on: no operator action, no lost message, and every request
	 * is answered within a tick */
	:: atomic { !healed -> healed = 1; printf("HEALED\n") }
#endif
	od
}

/* --------------------------------------------------------------- clock */

#if N > 2
#define IDLE (ws[0] == WNONE && ws[1] == WNONE && ws[2] == WNONE)
#define HARDSTOPS ((!work[0] || hs[0] > 0) && (!work[1] || hs[1] > 0) && (!work[2] || hs[2] > 0))
#else
#define IDLE (ws[0] == WNONE && ws[1] == WNONE)
#define HARDSTOPS ((!work[0] || hs[0] > 0) && (!work[1] || hs[1] > 0))
#endif

active proctype Clock() {
	byte k;
end:
	do
	:: atomic {
		/* time cannot pass a working leader's hard stop; once healed,
		 * requests are answered within a tick */
		HARDSTOPS && (!healed || IDLE) ->
		k = 0;
		do
		:: k < N ->
			if :: hs[k] > 0 -> hs[k]-- :: else -> skip fi;
			if :: hu[k] > 0 -> hu[k]-- :: else -> skip fi;
			if :: wv[k] > 0 -> wv[k]-- :: else -> skip fi;
#ifdef LIVENESS
			bo[k] = 0;
#endif
			k++
		:: else -> break
		od;
		k = 0;
		printf("---- tick\n") }
	od
}

init {
	byte n = 0;
	atomic {
		/* a released record of an earlier term */
		sx = 1; hv = 1; sh = 0; sr = 1; sd = RELD; si = 1;
		do
		:: n < N ->
#ifdef HOLE_NO_FLOOR
			man[n] = 0;
#else
			man[n] = LONG;
#endif
			n++
		:: else -> break
		od;
		n = 0;
		do
		:: n < N -> run Elector(n); n++
		:: else -> break
		od
	}
}

#ifdef LIVENESS
#if N > 2
#define SOMELEADER (mode[0] == LEAD || mode[1] == LEAD || mode[2] == LEAD)
#else
#define SOMELEADER (mode[0] == LEAD || mode[1] == LEAD)
#endif
/* Once the faults stop, a leader exists again and again (never for good
 * absent): checked with weak fairness (pan -a -f). */
ltl live { [] (healed -> <> SOMELEADER) }
#endif
