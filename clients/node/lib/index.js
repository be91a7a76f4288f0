'use strict';
// actorgrpc for Node.js: values, a client, and actors, from the actorgrpc.v1 protos.

const values = require('./values');
const errors = require('./errors');
const { Client } = require('./client');
const { Actor, STATES } = require('./actor');

module.exports = {
  Client,
  Actor,
  STATES,
  ActorRef: values.ActorRef,
  Pickled: values.Pickled,
  Double: values.Double,
  Tuple: values.Tuple,
  ActorGrpcError: errors.ActorGrpcError,
  values,
  errors,
};
