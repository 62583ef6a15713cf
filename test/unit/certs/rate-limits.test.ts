// SPDX-License-Identifier: MIT
// Orders per registered domain and in total, in sliding windows on an
// injected clock; a passed check holds its slot until the order or a timeout.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OrderRateLimits, shareOf } from '../../../src/certs/rate-limits';
import { registeredDomain } from '../../../src/certs/registered-domain';

const MIN = 60_000;
const H = 60 * MIN;

test('registered domains by the Public Suffix List, private section included', () => {
  assert.equal(registeredDomain('a.example.co.uk'), 'example.co.uk');
  assert.equal(registeredDomain('b.example.co.uk'), 'example.co.uk');
  assert.equal(registeredDomain('example.co.uk'), 'example.co.uk');
  assert.notEqual(registeredDomain('a.example.co.uk'), registeredDomain('a.other.co.uk'));
  assert.equal(registeredDomain('x.y.example.com'), 'example.com');
  // Let's Encrypt counts names under a private suffix (github.io) apart, as the PSL asks.
  assert.equal(registeredDomain('alice.github.io'), 'alice.github.io');
  assert.equal(registeredDomain('bob.github.io'), 'bob.github.io');
  // No registered domain: the name is its own group.
  assert.equal(registeredDomain('localhost'), 'localhost');
});

test('per registered domain: a.example.co.uk and b.example.co.uk share one budget; other domains do not', () => {
  const l = new OrderRateLimits({ perDomain: [{ count: 2, windowMs: H }], total: [], reservationMs: 5 * MIN });
  l.record('a.example.co.uk', 0);
  l.record('b.example.co.uk', 1);
  assert.equal(l.wouldExceed('c.example.co.uk', 2), 'domain');
  assert.equal(l.reserve('c.example.co.uk', 2), 'domain');
  assert.equal(l.wouldExceed('a.other.co.uk', 2), null);
  assert.equal(l.wouldExceed('example.org', 2), null);
});

test('a window slides: an order stops counting once it is older than the window', () => {
  const l = new OrderRateLimits({ perDomain: [{ count: 2, windowMs: H }], total: [], reservationMs: 5 * MIN });
  l.record('a.example.com', 0);
  l.record('b.example.com', 30 * MIN);
  assert.equal(l.wouldExceed('c.example.com', H - 1), 'domain');
  assert.equal(l.wouldExceed('c.example.com', H), null, 'the first order left the window');
  l.record('c.example.com', H);
  assert.equal(l.wouldExceed('d.example.com', H + 29 * MIN), 'domain');
  assert.equal(l.wouldExceed('d.example.com', H + 30 * MIN), null);
});

test('every window of a limit holds: 2 per hour and 3 per day', () => {
  const l = new OrderRateLimits({ perDomain: [{ count: 2, windowMs: H }, { count: 3, windowMs: 24 * H }], total: [], reservationMs: MIN });
  l.record('a.example.com', 0);
  l.record('b.example.com', 1);
  assert.equal(l.wouldExceed('c.example.com', 2 * H), null);
  l.record('c.example.com', 2 * H);
  assert.equal(l.wouldExceed('d.example.com', 10 * H), 'domain', 'the hour has room, the day does not');
  assert.equal(l.wouldExceed('d.example.com', 24 * H), null, 'the first order left the day');
});

test('the total limit counts every domain', () => {
  const l = new OrderRateLimits({ perDomain: [{ count: 5, windowMs: H }], total: [{ count: 3, windowMs: H }], reservationMs: MIN });
  l.record('a.one.com', 0);
  l.record('a.two.com', 0);
  l.record('a.three.com', 0);
  assert.equal(l.wouldExceed('a.four.com', 1), 'total');
  assert.equal(l.wouldExceed('a.four.com', H), null);
});

test('reservations: concurrent checks of distinct names cannot all pass a limit with room for one', () => {
  const l = new OrderRateLimits({ perDomain: [{ count: 1, windowMs: H }], total: [], reservationMs: 5 * MIN });
  assert.equal(l.reserve('a.example.com', 0), null);
  assert.equal(l.reserve('b.example.com', 0), 'domain', 'the slot is held by a.example.com');
  assert.equal(l.reserve('a.example.com', 1), null, 'the same name keeps its slot');
  l.record('a.example.com', 2);
  assert.equal(l.reserve('b.example.com', 3), 'domain', 'the order now holds it');
});

test('a reservation with no order is released after its time', () => {
  const l = new OrderRateLimits({ perDomain: [{ count: 1, windowMs: H }], total: [{ count: 1, windowMs: H }], reservationMs: 5 * MIN });
  assert.equal(l.reserve('a.example.com', 0), null);
  assert.equal(l.reserve('b.example.org', 0), 'total');
  assert.equal(l.reserve('b.example.org', 5 * MIN), null, 'released: no order followed');
  assert.equal(l.trackedGroups, 1, 'the released group is forgotten');
});

test('an order with no reservation still counts (it happened), even over the limit', () => {
  const l = new OrderRateLimits({ perDomain: [{ count: 1, windowMs: H }], total: [], reservationMs: MIN });
  l.record('a.example.com', 0);
  l.record('b.example.com', 0);
  assert.equal(l.wouldExceed('c.example.com', H - 1), 'domain');
});

test('"off" (no windows) never limits', () => {
  const l = new OrderRateLimits({ perDomain: [], total: [], reservationMs: MIN });
  for (let i = 0; i < 1000; i++) {
    assert.equal(l.reserve(`n${i}.example.com`, i), null);
    l.record(`n${i}.example.com`, i);
  }
});

test('memory stays bounded: old groups are forgotten', () => {
  const l = new OrderRateLimits({ perDomain: [{ count: 3, windowMs: H }], total: [], reservationMs: MIN });
  for (let i = 0; i < 500; i++) l.record(`a.d${i}.com`, 0);
  assert.equal(l.trackedGroups, 500);
  for (let i = 0; i < 100; i++) l.record(`a.late${i}.com`, 2 * H);
  assert.equal(l.trackedGroups, 100, 'groups with nothing in the window are dropped');
});

test('a client\'s share: floor(count × share), at least 1, of every window, domain and total alike', () => {
  assert.deepEqual(shareOf([{ count: 5, windowMs: H }, { count: 40, windowMs: 7 * 24 * H }], 0.25), [{ count: 1, windowMs: H }, { count: 10, windowMs: 7 * 24 * H }]);
  assert.deepEqual(shareOf([{ count: 2, windowMs: H }], 0.1), [{ count: 1, windowMs: H }], 'never 0: a client can always get one');
});

test('a client\'s share holds across domains (its total share) and within one (its domain share); other clients keep the rest', () => {
  const l = new OrderRateLimits({ perDomain: [{ count: 4, windowMs: H }], total: [{ count: 8, windowMs: H }], reservationMs: 5 * MIN, clientShare: 0.5 });
  // Per domain: 2 of 4 for client A.
  assert.equal(l.reserve('a.one.com', 0, 'A'), null);
  l.record('a.one.com', 0);
  assert.equal(l.reserve('b.one.com', 1, 'A'), null);
  l.record('b.one.com', 1);
  assert.equal(l.wouldExceed('c.one.com', 2, 'A'), 'client');
  assert.equal(l.reserve('c.one.com', 2, 'B'), null, 'B has its own share of one.com');
  l.record('c.one.com', 2);
  // Total: 4 of 8 for A, whatever the domains.
  assert.equal(l.reserve('a.two.com', 3, 'A'), null);
  l.record('a.two.com', 3);
  assert.equal(l.reserve('a.three.com', 4, 'A'), null);
  l.record('a.three.com', 4);
  assert.equal(l.reserve('a.four.com', 5, 'A'), 'client', "A's total share (4 of 8) is spent");
  assert.equal(l.reserve('a.four.com', 5, null), null, 'no client (a renewal): only the domain and total limits');
  assert.equal(l.wouldExceed('x.four.com', H + 5, 'A'), null, 'the window slid past A\'s orders');
});

test('a client\'s reservation counts against its share until it expires unused', () => {
  const l = new OrderRateLimits({ perDomain: [{ count: 2, windowMs: H }], total: [], reservationMs: MIN, clientShare: 0.5 });
  assert.equal(l.reserve('a.one.com', 0, 'A'), null);
  assert.equal(l.reserve('b.one.com', 1, 'A'), 'client', 'the reservation holds A\'s one slot');
  assert.equal(l.reserve('b.one.com', MIN + 1, 'A'), null, 'expired: the slot is free again');
});
