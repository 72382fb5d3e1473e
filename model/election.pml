/*
 * The election protocol of /work/protocol-v2.md (issue 9) as a Promela model.
 * model/README.md explains the abstraction, the time discretisation and
 * every switch.  scripts/spin.sh runs the checks.
 *
 * Real time is a global tick (proctype Clock).  Between two ticks the
 * processes take any number of atomic steps, in any order: the order of the
 * steps inside one tick interval is their order in real time.
 *
 * Ghost state: work[i] is true while elector i's work (lead) runs.  The
 * invariant "never two working at once" is asserted at the one place where
 * work starts (an overlap can only begin there).
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

#ifndef MAXV
#define MAXV 7              /* store versions: bounds the exploration */
#endif
#ifndef OPS
#define OPS 2               /* operator actions */
#endif
#ifndef DELS
#define DELS 1              /* of which at most DELS deletions */
#endif

#define max(a, b) ((a) > (b) -> (a) : (b))

/* ---------------------------------------------------------------- store */
bool sx;      /* the record exists */
byte sver;      /* version of the last write, delete or create (strictly increasing) */
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
byte prevv;   /* version of the last record before the deletion (for watch events) */

/* --------------------------------------------------------------- electors */
#define CAND 0
#define LEAD 1
#define STOP 2      /* term ended, waiting for the work to return */
#define REL  3      /* work returned; release to write */
#define RELW 4      /* release sent */

byte mode[N];
bool work[N];       /* ghost: the work of the term runs */
byte hs[N];         /* leader: ticks it may still cross while working */
byte lastv[N];      /* version of the last confirmed (or adopted) write */
bool vol[N];        /* the term ends voluntarily: release after the work returned */

/* observation and the follower's deadline chain */
#define OUNK  0     /* nothing seen */
#define ODEL  1     /* seen deleted */
#define OFREE 2     /* a marked release: take at once */
#define OOWN  3     /* holder and instance are this elector's */
#define OHELD 4     /* held by someone else, or an unmarked empty holder */
byte ok[N];
byte ov[N];         /* version observed */
byte hu[N];         /* heldUntil - now, in ticks (0: passed) */
byte man[N];        /* maxAnnounced since the chain was last cleared */
bool pown[N];       /* the record last seen before the deletion was ours */

/* the write in flight (one per elector) */
#define WNONE 0
#define WSENT 1
#define WOK   2     /* applied; the answer is on its way */
#define WFAIL 3     /* refused (CAS); the answer is on its way */
byte ws[N];
bool wc[N];         /* a create (precondition: no record) rather than a CAS update */
byte wb[N];         /* base version (CAS precondition) */
bool wrel[N];       /* a release (holder "", marked) rather than holder = self */
byte wv[N];         /* 1 + the ticks a leader may still cross while working if this
                     * write succeeds, counting down from its send; 0: too late */
byte wres[N];       /* the version it produced */

/* a write the elector gave up on, which may still be applied (late) */
bool os[N];
bool oc[N];
byte ob[N];
bool orel[N];

byte ops = 0;       /* operator actions taken */
byte dels = 0;

/* ---------------------------------------------------------- helpers */

/* heldUntil = max(heldUntil, now + d) measured on the elector's own clock,
 * which runs fast by as much as the drift bound allows: the countdown lasts
 * d-1 ticks.  A slower clock would only make the elector act later, and
 * nothing in the model forces an elector to act when it may: every later
 * action is explored anyway. */
inline extend(i, d) {
	hu[i] = max(hu[i], d - 1)
}

/* The record's content equals one of elector i's own leader writes, or its
 * last confirmed write, except perhaps for preferredHolder. */
#ifdef BUG_ADOPT_EDIT
#define MINE(i) (sx && sh == (i)+1 && si == (i)+1)
#else
#define MINE(i) (sx && sh == (i)+1 && si == (i)+1 && sed != 1)
#endif

/* A leader i reads or watches the record: anything that is not its own
 * write ends the term. */
inline judge(i) {
	if
	:: !sx -> mode[i] = STOP; vol[i] = 0; printf("e%d (leader) stops: deleted\n", i+1)
	:: sx && sver > lastv[i] && MINE(i) && sp == 0 ->
		lastv[i] = sver;                            /* own (late) write or a label */
		printf("e%d (leader) adopts v%d\n", i+1, sver)
	:: sx && sver > lastv[i] && MINE(i) && sp != 0 ->
		/* a handover request: end voluntarily, release naming the successor */
		lastv[i] = sver; mode[i] = STOP; vol[i] = 1;
		printf("e%d (leader) handover to %d: stops\n", i+1, sp)
	:: sx && sver > lastv[i] && !MINE(i) -> mode[i] = STOP; vol[i] = 0;
		printf("e%d (leader) stops: v%d is not its write\n", i+1, sver)
	:: else -> skip
	fi
}

/* The follower's view: a read (or watch event) of the current record. */
inline see(i) {
	if
	:: sx && (ok[i] == OUNK || ok[i] == ODEL || sver != ov[i]) ->
		ov[i] = sver;
		printf("e%d sees v%d holder=%d dur=%d inst=%d rel=%d pref=%d\n", i+1, sver, sh, sd, si, sr, sp);
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
			:: sh == (i)+1 && si == (i)+1 -> ok[i] = OOWN
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
	:: sx && ok[i] != OUNK && ok[i] != ODEL && sver == ov[i] -> skip  /* same version: keep first-seen */
	:: !sx && ok[i] != ODEL ->
		/* a read that finds nothing: the deletion's version is unknown */
		printf("e%d reads: not found\n", i+1);
		pown[i] = (ok[i] == OOWN);
		ok[i] = ODEL;
#ifndef BUG_STALE_DELETE
		t = max(LONG, man[i]); extend(i, t)
#endif
	:: !sx && ok[i] == ODEL ->
#ifndef BUG_STALE_DELETE
		/* every read that finds nothing counts from now */
		t = max(LONG, man[i]); extend(i, t)
#else
		skip
#endif
	fi
}

/* A deletion event from a complete watch (the elector saw the last record
 * before the deletion, and no version was missed): the chain stands. */
inline seeDeleteWatch(i) {
	printf("e%d watch: deleted after v%d\n", i+1, ov[i]);
	pown[i] = (ok[i] == OOWN);
	ok[i] = ODEL;
	ov[i] = sver
}

/* Send a write. */
inline send(i, create, base, rel) {
	printf("e%d sends a write (create=%d release=%d) on v%d\n", i+1, create, rel, base);
	ws[i] = WSENT; wc[i] = create; wb[i] = base; wrel[i] = rel;
	wv[i] = HS0 + 1
}

/* Versions only grow: a late write based on an older version can never be
 * applied; forget it (this only merges states). */
inline gc() {
	k = 0;
	do
	:: k < N -> if :: os[k] && !oc[k] && ob[k] != sver -> os[k] = 0; ob[k] = 0; orel[k] = 0 :: else -> skip fi; k++
	:: else -> break
	od;
	k = 0
}

/* Apply an elector's write (the caller checked the precondition). */
inline apply(i, rel) {
	sver++; sx = 1; si = (i)+1; sp = 0; sed = 0;
	if :: rel -> sh = 0; sr = 1; sd = RELD :: else -> sh = (i)+1; sr = 0; sd = LONG fi;
	gc();
	printf("store: e%d's write (release=%d) applied as v%d\n", i+1, rel, sver)
}

#ifdef BUG_LATE_START
#define INTIME(i) 1         /* work starts whenever the answer arrives */
#else
#define INTIME(i) (wv[i] > 0)
#endif
#ifdef BUG_REOWN
#define REOWN(i) pown[i]    /* fix 3 reverted: "it was ours", re-create at once */
#else
#define REOWN(i) 0
#endif
#define CASOK(create, base) ((create && !sx) || (!create && sx && sver == base))

/* ------------------------------------------------------------- elector */

proctype Elector(byte i) {
	byte j, t, k;
end:
	do
	/* ---- observe (a read, or a watch event) */
	:: atomic { see(i); if :: mode[i] == LEAD -> judge(i) :: else -> skip fi }
	:: atomic { !sx && ok[i] != ODEL && ok[i] != OUNK && ov[i] == prevv ->
		seeDeleteWatch(i); if :: mode[i] == LEAD -> judge(i) :: else -> skip fi }

	/* ---- candidate: decide and send */
	:: atomic { mode[i] == CAND && ws[i] == WNONE && ok[i] == ODEL &&
		(hu[i] == 0 || REOWN(i)) -> send(i, 1, 0, 0) }
	:: atomic { mode[i] == CAND && ws[i] == WNONE && (ok[i] == OFREE || ok[i] == OOWN ||
		(ok[i] == OHELD && hu[i] == 0)) -> send(i, 0, ov[i], 0) }

	/* ---- the network: apply the write in flight (or refuse it) */
	:: atomic { ws[i] == WSENT && sver < MAXV ->
		if
		:: CASOK(wc[i], wb[i]) -> apply(i, wrel[i]); wres[i] = sver; ws[i] = WOK
		:: else -> ws[i] = WFAIL; printf("store: e%d's write refused\n", i+1)
		fi }
	/* ... or the elector gives up on it (timeout, lost request or answer):
	 * if not applied yet it may still be applied later */
	:: atomic { ws[i] != WNONE ->
		if
		:: ws[i] == WSENT ->
			printf("e%d gives up on its write (it may land later)\n", i+1);
			os[i] = 1; oc[i] = wc[i]; ob[i] = wb[i]; orel[i] = wrel[i]
		:: else -> printf("e%d: the answer is lost\n", i+1)
		fi;
		ws[i] = WNONE; wc[i] = 0; wb[i] = 0; wrel[i] = 0; wv[i] = 0; wres[i] = 0;
		if :: mode[i] == RELW -> mode[i] = CAND :: else -> skip fi }
	/* a late write applied */
	:: atomic { os[i] && sver < MAXV && CASOK(oc[i], ob[i]) ->
		printf("late write of e%d:\n", i+1);
		t = orel[i]; os[i] = 0; oc[i] = 0; ob[i] = 0; orel[i] = 0;
		apply(i, t) }

	/* ---- the answer arrives */
	:: atomic { ws[i] == WOK ->
		if
		:: mode[i] == CAND && !INTIME(i) ->
			/* the answer came after the validity it would give: no work */
			printf("e%d acquired, but too late to work\n", i+1)
		:: mode[i] == CAND && INTIME(i) ->
			/* the acquisition succeeded: a new term, validity from the send */
			mode[i] = LEAD; lastv[i] = wres[i]; vol[i] = 0;
			hs[i] = (wv[i] > 0 -> wv[i] - 1 : 0);
			printf("e%d LEADS (token v%d), may work %d more ticks: WORK STARTS\n", i+1, wres[i], hs[i]);
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
			hs[i] = max(hs[i], t); lastv[i] = wres[i];
			printf("e%d renewed: v%d, may work %d more ticks\n", i+1, wres[i], hs[i])
		:: mode[i] == STOP || mode[i] == REL -> lastv[i] = wres[i]
		:: mode[i] == RELW -> mode[i] = CAND; printf("e%d released\n", i+1)
		fi;
		ws[i] = WNONE; wc[i] = 0; wb[i] = 0; wrel[i] = 0; wv[i] = 0; wres[i] = 0; t = 0;
		see(i) }
	:: atomic { ws[i] == WFAIL ->
		ws[i] = WNONE; wc[i] = 0; wb[i] = 0; wrel[i] = 0; wv[i] = 0; wres[i] = 0;
		if
		:: mode[i] == LEAD -> see(i); judge(i)   /* re-read: judge what is there */
		:: mode[i] == RELW -> mode[i] = CAND     /* not ours any more: nothing to release */
		:: else -> skip
		fi }

	/* ---- leader */
	:: atomic { mode[i] == LEAD && ws[i] == WNONE -> send(i, 0, lastv[i], 0) }   /* renew */
	:: atomic { mode[i] == LEAD -> mode[i] = STOP; vol[i] = 1;   /* work returns / resign */
		printf("e%d resigns: work cancelled (still running until it returns)\n", i+1) }
	:: atomic { mode[i] == LEAD && hs[i] <= LATE -> mode[i] = STOP; vol[i] = 0;  /* the validity timer */
		printf("e%d validity timer: cancel\n", i+1) }
	:: atomic { mode[i] == STOP -> work[i] = 0; hs[i] = 0; printf("e%d WORK RETURNED\n", i+1);
		if :: vol[i] -> mode[i] = REL :: else -> mode[i] = CAND; lastv[i] = 0 fi }  /* the work has returned */
	:: atomic { mode[i] == REL && ws[i] == WNONE ->
		/* the marked release, after the work returned */
		send(i, 0, lastv[i], 1); mode[i] = RELW; lastv[i] = 0 }
	od
}

/* ------------------------------------------------------------ operator */

/* Every operator write keeps the annotations (instance) of the record it
 * edits, as kubectl edit or a read-modify-write client does. */
inline bump() {
	sver++;
	k = 0;
	do
	:: k < N -> if :: os[k] && !oc[k] && ob[k] != sver -> os[k] = 0; ob[k] = 0; orel[k] = 0 :: else -> skip fi; k++
	:: else -> break
	od;
	k = 0
}

active proctype Operator() {
	byte k;
end:
	do
	:: atomic { ops < OPS && sx && sver < MAXV && sh != 0 && sd != SHORT -> bump(); sd = SHORT; sed = 1; ops++;
		printf("OPERATOR edits the duration to %d: v%d\n", SHORT, sver) }
	:: atomic { ops < OPS && sx && sver < MAXV && sh != 0 -> bump(); sh = 0; sed = 1; ops++;
		printf("OPERATOR empties the holder (no release mark): v%d\n", sver) }
	:: atomic { ops < OPS && sx && sver < MAXV && sh != STRANGER -> bump(); sh = STRANGER; sed = 1; ops++;
		printf("OPERATOR sets holder %d: v%d\n", STRANGER, sver) }
	:: atomic { ops < OPS && sx && sver < MAXV && sh != 0 && sp == 0 -> bump(); sp = 1 + (sh % N);
		if :: sed == 0 -> sed = 2 :: else -> skip fi; ops++;
		printf("OPERATOR asks for a handover to %d: v%d\n", sp, sver) }
	:: atomic { ops < OPS && sx && sver < MAXV -> bump(); ops++;
		printf("OPERATOR adds a label: v%d\n", sver) }
	:: atomic { ops < OPS && dels < DELS && sx && sver < MAXV -> prevv = sver; bump(); sx = 0;
		sh = 0; sd = 0; si = 0; sr = 0; sp = 0; sed = 0; ops++; dels++;
		printf("OPERATOR deletes: v%d\n", sver) }
	od
}

/* --------------------------------------------------------------- clock */

active proctype Clock() {
	byte k;
end:
	do
	:: atomic {
		/* time cannot pass a working leader's hard stop */
		(!work[0] || hs[0] > 0) && (N < 2 || !work[1] || hs[1] > 0)
#if N > 2
		&& (!work[2] || hs[2] > 0)
#endif
		->
		k = 0;
		do
		:: k < N ->
			if :: hs[k] > 0 -> hs[k]-- :: else -> skip fi;
			if :: hu[k] > 0 -> hu[k]-- :: else -> skip fi;
			if :: wv[k] > 0 -> wv[k]-- :: else -> skip fi;
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
		sx = 1; sver = 1; sh = 0; sr = 1; sd = RELD; si = 1;
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
