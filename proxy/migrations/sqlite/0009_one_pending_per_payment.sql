-- At most one attempt per payment is being sent (`pending`): the refund flow checks this
-- before it records an attempt; the index makes it a rule of the database itself.
CREATE UNIQUE INDEX refunds_one_pending ON refunds (session_id) WHERE state = 'pending';
