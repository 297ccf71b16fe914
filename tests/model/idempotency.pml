/*
 * SPDX-License-Identifier: MIT
 * Copyright (c) 2026 The idempotency authors
 *
 * A Promela model of ONE idempotency key: the store's state machine (claim, complete, fail,
 * release, renew), the executor's client protocol around it, a lossy and reordering network,
 * a nondeterministic clock (lease and TTL expiry), client crashes and store restarts.
 * Checked by scripts/model-check.sh; explained, with its simplifications, in docs/model.md.
 *
 * Structure: the store is global variables; each store request is applied atomically (the
 * store serializes requests on a key). NC client processes run the executor's protocol; one
 * environment process delivers delayed requests, expires results (TTL) and restarts the
 * store. A lease passing is decided by the claim that finds the record: in an untimed model
 * "the lease has passed" is exactly "a claim may take the record over" (EXPIRY_OK).
 *
 * Configuration (spin -DNAME):
 *   LEASE_EXPIRY  a lease may expire while its holder runs (takeover mid-run)
 *   CRASH_WINDOW  a holder may stop between its side effect and a landed complete
 *   TXN           transactional mode: side effect and complete are one store transaction
 *   VOLATILE      a store restart loses the store's state (Redis without fsync)
 *   CTS           clients are the hand-written check-then-set, not the library
 *   MUT_COMPLETE  mutant: complete does not check the token
 *   MUT_RELEASE   mutant: release deletes whatever record is there
 *   MUT_CLAIM     mutant: claim is two store steps (read, then a plain set)
 *   MUT_IDEMP     mutant: a resent complete is refused when its own token already completed
 *   CHECK_P4      assert P4 (at most one side effect per record life)
 *   RENEW         holders may renew their lease once (off in every checked configuration:
 *                 where a lease may pass at any moment a renewal changes nothing the
 *                 properties can see; it only adds states)
 * Bounds (defaults): NC=3 clients (3 or 4), ATT=2 calls per client, MAXLOSS=2 lost replies
 * or delayed requests in all, CTRIES=2 sends of complete per call, MAXTTL=1 TTL expiry,
 * MAXRST=1 store restart (durable: the record is kept, requests in flight are lost; with
 * VOLATILE the record is lost too).
 *
 * Properties (each an assert, named in its comment so a trail tells which one failed):
 *   P1 at most one result (complete or fail) is recorded per record life
 *   P2 every replay returns the result recorded in this life
 *   P3 only the current holder (the last token acquired in this life) changes the record
 *   P4 the side effect happens at most once per record life           (only with CHECK_P4)
 *   P5 a client told "recorded" has its value in the live record; one told "lease lost"
 *      does not
 * A record life ends when its result expires (TTL) or a volatile restart loses it; a lease
 * expiry, a takeover or a release does not end it.
 */

#ifndef NC
#define NC 3
#endif
#ifndef ATT
#define ATT 2
#endif
#ifndef CTRIES
#define CTRIES 2
#endif
#ifdef CTS
#define MAXLOSS 0
#define MAXTTL 0
#define MAXRST 0
#endif
#ifndef MAXLOSS
#define MAXLOSS 2
#endif
#ifndef MAXTTL
#define MAXTTL 1
#endif
#ifndef MAXRST
#define MAXRST 1
#endif

/* record states */
#define ABSENT 0
#define INPROG 1
#define DONE   2 /* Completed */
#define FAILED 3

/* requests */
#define NONE       0
#define OP_CLAIM   1
#define OP_COMPLETE 2
#define OP_FAIL    3
#define OP_RELEASE 4
#define OP_RENEW   5
#define OP_TXN     6 /* transactional: side effect + complete in one store transaction */

/* replies; 0 = no reply (timeout: the reply was lost, or the request is delayed) */
#define R_ACQ    1
#define R_INPROG 2
#define R_DONE   3
#define R_FAILED 4
#define R_TRUE   5
#define R_FALSE  6

/* ---- the store: one key ---- */
byte rst;           /* ABSENT, INPROG, DONE, FAILED */
byte rtok;          /* token holding (INPROG) or that finished (DONE/FAILED) the record */
byte rval;          /* payload (DONE/FAILED) */
byte nt;            /* scratch for a fresh token, 0 between steps */

/* ---- ghosts, per record life ---- */
byte g_rec;    /* results recorded in this life */
byte g_eff;    /* side effects in this life */
byte g_val;    /* the result recorded in this life (0: none yet) */
byte g_holder; /* the last token acquired in this life (0: none) */

/* ---- environment budgets ---- */
byte losses;   /* lost replies + delayed requests so far */
byte ttls;     /* TTL expiries so far */
byte restarts; /* store restarts so far */

/* ---- what the environment may know about clients (for the expiry rule) ---- */
byte mytok[NC];  /* the token client c runs with now (0: not running an operation) */
byte efftok[NC]; /* the token under which client c did its last side effect */

/* ---- the network: one delayed request per client ---- */
byte pop[NC];
byte ptok[NC];
byte pval[NC];

#if NC == 3
#define PENDING (pop[0] != NONE || pop[1] != NONE || pop[2] != NONE)
#define RUNNING(t) (mytok[0] == (t) || mytok[1] == (t) || mytok[2] == (t))
#define EXPOSED(t) (efftok[0] == (t) || efftok[1] == (t) || efftok[2] == (t))
#define INFLIGHT(t) (ptok[0] == (t) || ptok[1] == (t) || ptok[2] == (t))
#elif NC == 4
#define PENDING (pop[0] != NONE || pop[1] != NONE || pop[2] != NONE || pop[3] != NONE)
#define RUNNING(t) (mytok[0] == (t) || mytok[1] == (t) || mytok[2] == (t) || mytok[3] == (t))
#define EXPOSED(t) (efftok[0] == (t) || efftok[1] == (t) || efftok[2] == (t) || efftok[3] == (t))
#define INFLIGHT(t) (ptok[0] == (t) || ptok[1] == (t) || ptok[2] == (t) || ptok[3] == (t))
#else
#error "NC must be 3 or 4"
#endif

/* May a claim find the lease of the InProgress record (token rtok) passed, and take over? */
#if defined(LEASE_EXPIRY) || defined(TXN)
#define EXPIRY_OK 1 /* at any time, also while its holder runs */
#define TRACK_EXPOSED 0
#elif defined(CRASH_WINDOW)
#define EXPIRY_OK (!RUNNING(rtok)) /* holder crashed or gave up, perhaps after its effect */
#define TRACK_EXPOSED 0
#else
#define TRACK_EXPOSED 1 /* efftok is read only here: elsewhere it stays 0 */
/* never while the holder runs, nor while its side effect is done but its result has not
   landed (a crash in that window, or a complete still in flight after the client gave up) */
#define EXPIRY_OK (!RUNNING(rtok) && !EXPOSED(rtok))
#endif

/* A fresh token: the smallest value that no record, client, ghost or message holds. Only a
   value nobody can present any more is reused, so it is as good as a never-used one (a plain
   counter would give the same behaviours with many more states). Leaves it in nt. */
inline fresh_token() {
  nt = 1;
  do
  :: nt == rtok || nt == g_holder || RUNNING(nt) || EXPOSED(nt) || INFLIGHT(nt) -> nt++
  :: else -> break
  od
}

inline new_life() {
  g_rec = 0; g_eff = 0; g_val = 0; g_holder = 0
}

inline wipe() {
  rst = ABSENT; rtok = 0; rval = 0
}

/* the record becomes result `st` with payload `v`: the one place a result is recorded */
inline record(st, v) {
  rst = st; rval = v;
  g_rec++;
  if
  :: g_rec == 1 -> g_val = v
  :: else -> skip
  fi;
  assert(g_rec <= 1) /* P1: at most one recorded result per record life */
}

inline side_effect(t) {
#if TRACK_EXPOSED
  efftok[c] = t;
#endif
  g_eff++;
#ifdef CHECK_P4
  assert(g_eff <= 1) /* P4: the side effect happens at most once per record life */
#endif
}

/* claim: ONE atomic step (the mutant MUT_CLAIM splits it in two, in the client) */
inline st_claim(res) {
  if
  :: rst == ABSENT || (rst == INPROG && EXPIRY_OK) -> /* acquired (took_over if INPROG) */
     fresh_token();
     rst = INPROG; rtok = nt; nt = 0; rval = 0;
     g_holder = rtok;
     res = R_ACQ
  :: rst == INPROG -> res = R_INPROG /* its lease has not passed */
  :: rst == DONE ->
     assert(rval == g_val); /* P2: a replay returns the result recorded in this life */
     res = R_DONE
  :: rst == FAILED ->
     assert(rval == g_val); /* P2: a replay returns the result recorded in this life */
     res = R_FAILED
  fi
}

/* The store steps below use no `else`: a CALL puts a step's options into its own `if`, where
   an `else` would mean "no other option, loss included, is possible". */

/* complete (st = DONE) / fail (st = FAILED) by token t with payload v */
#ifdef MUT_COMPLETE
#define FINISHABLE(st, t) (rst == INPROG && (rtok == (t) || (st) == DONE)) /* mutant: no token check */
#else
#define FINISHABLE(st, t) (rst == INPROG && rtok == (t)) /* held, even past its lease */
#endif
#define FINISHED_BY(st, t) (rst == (st) && rtok == (t))
inline st_finish(st, t, v, res) {
  if
  :: FINISHABLE(st, t) ->
     assert(t == g_holder); /* P3: only the current holder changes the record */
     rtok = t; record(st, v); res = R_TRUE
  :: FINISHED_BY(st, t) -> /* a resend by the token that finished it: no change */
#ifdef MUT_IDEMP
     if
     :: st == DONE -> res = R_FALSE /* mutant: not idempotent */
     :: else -> res = R_TRUE
     fi
#else
     res = R_TRUE
#endif
  :: !FINISHABLE(st, t) && !FINISHED_BY(st, t) -> res = R_FALSE
  fi
}

#ifdef MUT_RELEASE
#define RELEASABLE(t) (rst != ABSENT) /* mutant: deletes whatever is there */
#else
#define RELEASABLE(t) (rst == INPROG && rtok == (t))
#endif
inline st_release(t, res) {
  if
  :: RELEASABLE(t) ->
     assert(t == g_holder); /* P3: only the current holder changes the record */
     wipe(); g_holder = 0; /* a release does not end the life; the next claim sets g_holder */
     res = R_TRUE
  :: !RELEASABLE(t) -> res = R_FALSE
  fi
}

#define HELD(t) (rst == INPROG && rtok == (t))
inline st_renew(t, res) {
  if
  :: HELD(t) ->
     assert(t == g_holder); /* P3: only the current holder changes the record */
     res = R_TRUE /* the lease now runs from here: nothing to change in an untimed model */
  :: !HELD(t) -> res = R_FALSE
  fi
}

/* transactional complete: token check, side effect and result commit together or not at all */
inline st_txn(t, v, res) {
  if
  :: HELD(t) ->
     assert(t == g_holder); /* P3: only the current holder changes the record */
     side_effect(t);
     record(DONE, v); res = R_TRUE
  :: !HELD(t) -> res = R_FALSE /* rolled back: neither the effect nor the result */
  fi
}

inline apply(op, t, v, res) {
  if
  :: op == OP_CLAIM -> st_claim(res)
  :: op == OP_COMPLETE -> st_finish(DONE, t, v, res)
  :: op == OP_FAIL -> st_finish(FAILED, t, v, res)
  :: op == OP_RELEASE -> st_release(t, res)
  :: op == OP_RENEW -> st_renew(t, res)
  :: op == OP_TXN -> st_txn(t, v, res)
  fi
}

/* P5, checked when the reply of a complete/fail/transaction reaches the client, against the
   record as the store answered (reply and store step are one atomic step in this model) */
inline check_p5(st, v, res) {
  if
  :: res == R_TRUE -> assert(rst == st && rval == v) /* P5: told recorded => recorded */
  :: res == R_FALSE -> assert(!(rst == st && rval == v)) /* P5: told lease lost => not recorded */
  :: else -> skip
  fi
}

/* One request OP(T, V) from client c, whose store step is STEP: delivered with its reply,
   or the reply is lost (the request landed, the client times out), or the request is
   delayed (the client times out; the network delivers it later, after the client's later
   requests, or never). A macro, not an inline, so that each call site holds only its own
   store step (pan.c stays small enough to compile quickly). */
#define CALL(OP, T, V, STEP) \
  if \
  :: STEP \
  :: losses < MAXLOSS -> losses++; STEP; res = 0 \
  :: losses < MAXLOSS && pop[c] == NONE -> \
     losses++; pop[c] = OP; ptok[c] = T; pval[c] = V; res = 0 \
  fi

/* The network delivers client c's delayed request; its reply goes nowhere. */
inline deliver() {
  apply(pop[c], ptok[c], pval[c], r);
  if /* keep the ghost tidy: a landed complete is no longer exposed */
  :: pop[c] == OP_COMPLETE && r == R_TRUE && efftok[c] == ptok[c] -> efftok[c] = 0
  :: else -> skip
  fi;
  pop[c] = NONE; ptok[c] = 0; pval[c] = 0; r = 0; c = 0
}

/* A client's value for its call number a: unique per client and call (never 0). */
#define VAL (c * ATT + a)

/* Crashes. A crash is a client that stops for good. Where a lease may pass at any time
   (LEASE_EXPIRY, TXN) a stopped client is already every prefix of a run in which it makes
   no further move, so no explicit crash step is needed. Elsewhere the lease of a crashed
   holder may pass (EXPIRY_OK reads mytok), so the crash is an explicit step. */
#if defined(LEASE_EXPIRY) || defined(TXN)
#define CRASHES 0
#else
#define CRASHES 1
#endif
#ifdef CRASH_WINDOW
#define CW 1
#else
#define CW 0
#endif

#ifndef CTS
/* The operation runs; what it does, as one step:
   - throws, no side effect: release (default policy), or fail (the "remember" policy);
   - succeeds: the side effect (then complete, the next step), or, transactional, the
     transaction that does the side effect and records the result together. */
/* Ends this call (the caller may call again) or the client, resetting the locals so that
   equal situations are equal states. */
#define NEXT_CALL res = 0; tries = 0; lost = 0; goto next_call
#define STOP a = 0; res = 0; tries = 0; lost = 0; goto stop

inline operate() {
  if
  :: CALL(OP_RELEASE, mytok[c], 0, st_release(mytok[c], res)); mytok[c] = 0; NEXT_CALL
  :: !lost ->
     CALL(OP_FAIL, mytok[c], VAL, st_finish(FAILED, mytok[c], VAL, res));
     check_p5(FAILED, VAL, res); mytok[c] = 0;
     if
     :: res == R_TRUE -> STOP /* failure remembered: the caller gets it */
     :: else -> NEXT_CALL /* lease lost, or timeout: StoreError */
     fi
#ifdef TXN
  :: CALL(OP_TXN, mytok[c], VAL, st_txn(mytok[c], VAL, res)); check_p5(DONE, VAL, res);
     if
     :: res == R_TRUE -> mytok[c] = 0; STOP /* committed */
     :: res == R_FALSE -> mytok[c] = 0; NEXT_CALL /* lease lost: rolled back */
     :: else -> goto txn_unknown
     fi
#else
  :: side_effect(mytok[c]); goto send_complete
#endif
  fi
}

/* The executor: claim; if acquired run the operation, then complete (resent after a lost
   reply); a replay (completed or failed) ends the caller's calls; in progress, a timeout or
   a lost lease ends this call and the caller may call again (up to ATT calls). Every step
   below is one atomic step: a store request with its reply, and the client's decision. */
proctype client(byte c) {
  byte a = 0;   /* calls made */
  byte res;
  byte tries;   /* sends of complete in this call */
  bool lost;    /* renewal found the lease lost */
next_call:
#ifdef MUT_CLAIM
  atomic { /* mutant: claim as two store steps; this one reads */
    if
    :: a == ATT -> STOP
    :: else -> a++
    fi;
    if
    :: rst == ABSENT || (rst == INPROG && EXPIRY_OK) -> goto claim_set
    :: rst == INPROG -> goto next_call
    :: rst == DONE || rst == FAILED -> assert(rval == g_val); /* P2 */ STOP
    fi
  };
claim_set:
  atomic { /* ... and this one sets, plainly */
    fresh_token();
    rst = INPROG; rtok = nt; nt = 0; rval = 0;
    g_holder = rtok; mytok[c] = rtok;
    goto holding
  };
#else
  atomic {
    if
    :: a == ATT -> STOP
    :: else -> a++
    fi;
    CALL(OP_CLAIM, 0, 0, st_claim(res));
    if
    :: res == R_ACQ -> mytok[c] = rtok; res = 0; goto holding
    :: res == R_DONE || res == R_FAILED -> res = 0; STOP /* a replay */
    :: else -> res = 0; goto next_call /* in progress, or timeout: call again later */
    fi
  };
#endif
holding:
  atomic {
    if
    :: CRASHES -> mytok[c] = 0; STOP /* crash before the operation */
#ifdef RENEW
    :: /* lease renewal (its reply may be lost, the request late); then the next step */
       CALL(OP_RENEW, mytok[c], 0, st_renew(mytok[c], res));
       lost = (res == R_FALSE); res = 0;
       goto operating
#endif
    :: skip
    fi;
operating: /* reached directly, or after a renewal as a step of its own */
    operate()
  };
#ifndef TXN
send_complete:
  atomic {
    if
    :: CRASHES && (CW || tries > 0) ->
       /* crash between the side effect and complete (CRASH_WINDOW only), or after a
          complete was sent whose reply did not come */
       mytok[c] = 0; STOP
    :: lost -> mytok[c] = 0; efftok[c] = 0; NEXT_CALL /* lease lost: not sent */
    :: !lost ->
       CALL(OP_COMPLETE, mytok[c], VAL, st_finish(DONE, mytok[c], VAL, res));
       check_p5(DONE, VAL, res);
       tries++;
       if
       :: res == R_TRUE -> mytok[c] = 0; efftok[c] = 0; STOP /* recorded */
       :: res == R_FALSE -> mytok[c] = 0; efftok[c] = 0; NEXT_CALL /* lease lost */
       :: res == 0 && tries < CTRIES -> goto send_complete /* resend, same token */
       :: res == 0 && tries >= CTRIES -> mytok[c] = 0; NEXT_CALL /* ResultNotRecorded */
       fi
    fi
  };
#else
txn_unknown:
  atomic { /* the commit's outcome is unknown: release (token-checked: a commit stays) */
    CALL(OP_RELEASE, mytok[c], 0, st_release(mytok[c], res)); mytok[c] = 0; NEXT_CALL
  };
#endif
stop: /* the caller has its answer, or the client crashed: it sends nothing more */
  skip
}
#else
/* The hand-written check-then-set: read; if absent set a processing flag (a plain SET, a
   separate step); run; write the result. No expiry, no crash, no message loss. */
proctype client(byte c) {
  byte a = 0;
next_call:
  atomic { /* step 1: read */
    if
    :: a == ATT -> goto done
    :: else -> a++
    fi;
    if
    :: rst == ABSENT -> goto set_flag
    :: rst == INPROG -> goto next_call /* "in progress": call again */
    :: rst == DONE -> assert(rval == g_val); /* P2 */ goto done
    fi
  };
set_flag:
  atomic { rst = INPROG; rval = 0; goto effect }; /* step 2: SET processing */
effect:
  atomic { side_effect(0); goto write_result };
write_result:
  atomic { /* a plain SET of the result */
    if
    :: rst == INPROG -> record(DONE, VAL)
    :: else -> rst = DONE; rval = VAL
    fi;
    goto done
  };
done:
  skip
}
#endif

/* The environment: delayed requests arrive, leases and results expire, the store restarts. */
active proctype env() {
  byte r;
  byte c;
end_env:
  do
  :: atomic { PENDING -> /* a delayed request arrives (c: the client whose it is) */
       if
       :: pop[0] != NONE -> c = 0
       :: pop[1] != NONE -> c = 1
       :: pop[2] != NONE -> c = 2
#if NC == 4
       :: pop[3] != NONE -> c = 3
#endif
       fi;
       deliver() }
  :: atomic { ttls < MAXTTL && (rst == DONE || rst == FAILED) -> /* the result expires */
       ttls++; wipe(); new_life() }
#ifdef VOLATILE
  :: atomic { restarts < MAXRST && (rst != ABSENT || PENDING) -> restarts++;
       wipe(); new_life(); /* state lost: a new record life */
#else
  :: atomic { restarts < MAXRST && PENDING -> restarts++; /* the record is kept */
#endif
       /* durable or not, requests in flight on the dropped connections are lost */
       pop[0] = NONE; ptok[0] = 0; pval[0] = 0;
       pop[1] = NONE; ptok[1] = 0; pval[1] = 0;
       pop[2] = NONE; ptok[2] = 0; pval[2] = 0;
#if NC == 4
       pop[3] = NONE; ptok[3] = 0; pval[3] = 0;
#endif
     }
  od
}

init {
  byte i = 0;
  atomic {
    do
    :: i < NC -> run client(i); i++
    :: else -> break
    od
  }
}
