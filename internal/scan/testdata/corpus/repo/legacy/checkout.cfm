<cfset apiKey = "⟦S:alnum/32⟧">
<cfset endpoint = "https://api.payments.example.com/v1/charges">
<cfset localApiKey = application.⟦L=apiKey⟧>

<cfhttp url="#endpoint#" method="post" result="charge">
    <cfhttpparam type="header" name="Authorization" value="Bearer ⟦S:stripe-live⟧">
    <cfhttpparam type="header" name="Accept" value="⟦L=application/json⟧">
    <cfhttpparam type="header" name="Idempotency-Key" value="⟦L:uuid⟧">
    <cfhttpparam type="formfield" name="amount" value="#form.amount#">
</cfhttp>

<cfquery name="orders" datasource="orders" username="portal" password="⟦S:password⟧">
    SELECT id, total FROM orders WHERE customer_id = <cfqueryparam value="#session.customerId#" cfsqltype="cf_sql_integer">
</cfquery>
