// Text of the Top Up page in English and Chinese, keyed by message id; {name} marks a parameter.
'use strict';

window.TOPUP_I18N = {
    en: {
        'page.title': 'Top Up',
        'page.skip': 'Skip to content',
        'page.brand': 'Wuliang AI Open Platform',
        'page.breadcrumb': 'Breadcrumb',
        'page.finance': 'Finance',
        'page.lead': 'Add funds to your account to pay for API usage.',
        'lang.label': 'Language',

        'auth.title': 'Sign in',
        'auth.tokenLabel': 'Account token',
        'auth.tokenHelp':
            'Paste the access token issued for your account. It is kept only for this browser tab.',
        'auth.tokenWhere':
            'Where a token comes from: your administrator issues one for your account with this ' +
            'command (on a local stack, deploy/dev.sh up prints it):',
        'auth.submit': 'Sign in',
        'auth.signOut': 'Sign out',
        'auth.account': 'Account {account}',
        'auth.tokenRequired': 'Enter your account token.',
        'auth.expired': 'Your session has expired. Sign in again with a new token.',
        'auth.rejected': 'This token was not accepted. Check that you pasted the whole token.',
        'auth.signedOut': 'You have signed out.',

        'tabs.overview': 'Overview',
        'tabs.orders': 'Top Up Orders',
        'tabs.flows': 'Account Flows',

        'balance.title': 'Available balance',
        'balance.refresh': 'Refresh',
        'balance.updated': 'Updated {time}',
        'balance.credited': 'Your balance was updated: {amount}',
        'balance.stale': 'Could not refresh the balance; retrying.',

        'form.title': 'Top up',
        'form.amount': 'Amount (CNY)',
        'form.custom': 'Custom',
        'form.customLabel': 'Custom amount (CNY)',
        'form.customHelp': 'From {min} to {max}, up to two decimals.',
        'form.channel': 'Payment channel',
        'form.bankTransfer': 'Bank Transfer',
        'form.remitterName': 'Remitter name',
        'form.remitterNameHelp':
            'The name of the person or company sending the transfer, as your bank shows it.',
        'form.remitterBank': 'Bank name',
        'form.remitterBankHelp': 'The bank you are sending the transfer from.',
        'form.remarks': 'Note for this order',
        'form.remarksHelp':
            'Only for you and our support team: the bank never sees it. The reference code goes ' +
            'into the remark field of your bank transfer (附言 / 备注), which you fill in at your bank.',
        'form.optional': '(optional)',
        'form.remarksCount': '{count} / {max} characters',
        'form.agreement': 'I have read and agree to the Recharge Agreement.',
        'form.agreementRead': 'Read the Recharge Agreement',
        'form.submit': 'Submit',
        'form.submitting': 'Submitting…',
        'form.fixErrors': 'Please correct the highlighted fields.',

        'payee.title': 'Transfer to this account',
        'payee.bankName': 'Bank name',
        'payee.accountName': 'Account name',
        'payee.accountNumber': 'Account number',
        'payee.help':
            "After you submit, enter the order's reference code in the remark field of your bank " +
            'transfer (附言 / 备注).',
        'payee.afterSubmit': 'Shown after you submit',

        'result.title': 'Order created: complete your bank transfer',
        'result.lead':
            'Enter this reference code in the remark field of your bank transfer (附言 / 备注) so ' +
            'that we can match it to your order.',
        'result.reference': 'Reference code',
        'result.copy': 'Copy',
        'result.copied': 'Copied',
        'result.copyFailed': 'Copy failed: select the code and copy it by hand.',
        'result.amount': 'Amount',
        'result.status': 'Status',
        'result.created': 'Created',
        'result.expires': 'Transfer before',
        'result.another': 'Create another order',
        'result.instruction':
            'Transfer exactly {amount} to the account below and enter the reference code {code} in ' +
            'the remark field of your bank transfer (附言 / 备注).',

        'orders.title': 'Top up orders',
        'orders.caption': 'Your top-up orders, newest first',
        'orders.statusFilter': 'Status',
        'orders.reference': 'Reference code',
        'orders.amount': 'Amount',
        'orders.status': 'Status',
        'orders.remitter': 'Remitter',
        'orders.created': 'Created',
        'orders.expires': 'Transfer before',
        'orders.actions': 'Actions',
        'orders.cancel': 'Cancel',
        'orders.cancelLabel': 'Cancel order {code}',
        'orders.empty': 'No orders yet.',
        'orders.pager': 'Order pages',
        'orders.cancelled': 'Order {code} was cancelled.',
        'orders.notPending':
            'Order {code} can no longer be cancelled: it is now {status}.',
        'orders.notPendingProcessing':
            'Order {code} can no longer be cancelled: your transfer has already been matched to ' +
            'it and is being credited to your balance.',
        'orders.notPendingCompleted':
            'Order {code} can no longer be cancelled: your transfer has already been matched to ' +
            'it and credited to your balance.',
        'orders.mismatch': 'Amount received differs',
        'orders.mismatchAmount': 'Amount received differs: {credited}',

        'orders.openLabel': 'Open order {code}',
        'awaiting.title': 'Awaiting your transfer',
        'awaiting.item': '{amount} for order {code}',
        'awaiting.until': 'Transfer before',
        'awaiting.all': 'All orders',
        'orders.howToPay': 'How to pay',
        'orders.howToPayLabel': 'How to pay order {code}',

        'settings.failed': 'The top-up options could not be loaded ({reason}). The form is off until they are.',

        'detail.back': '← All orders',
        'detail.title': 'Order {code}',
        'detail.createdTitle': 'Order {code} created: complete your bank transfer',
        'detail.notFound': 'There is no order {code} on this account.',
        'detail.loadFailed': 'This order could not be loaded ({reason}).',
        'detail.payTitle': 'How to pay',
        'detail.timeline': 'Progress',
        'detail.note': 'Your note (not sent to the bank)',
        'detail.yourBank': 'Your bank',
        'detail.sumPending':
            'Waiting for your bank transfer of {amount}. Send it with the details below; this page ' +
            'stays here, so you can come back to it at any time.',
        'detail.sumProcessing': 'Your transfer has arrived and is being credited to your balance.',
        'detail.sumCompleted': '{credited} was credited to your balance. Nothing more to do.',
        'detail.sumCancelled':
            'This order was cancelled. Do not send a transfer for it; create a new order instead.',
        'detail.sumExpired':
            'This order expired before a transfer arrived. Do not send a transfer for it; create a ' +
            'new order instead. If you did send one, contact support with the order code.',

        'step.created': 'Order created',
        'step.awaiting': 'Awaiting your transfer',
        'step.received': 'Transfer received',
        'step.credited': 'Credited to your balance',
        'step.cancelled': 'Cancelled',
        'step.expired': 'Expired',
        'step.until': 'until',
        'stepState.done': 'done',
        'stepState.current': 'current step',
        'stepState.todo': 'to come',
        'stepState.stopped': 'ended here',

        'pay.account_name': 'Payee account name',
        'pay.bank_name': 'Payee bank',
        'pay.account_number': 'Payee account number',
        'pay.amount': 'Exact amount',
        'pay.code': 'Reference code',
        'pay.codeHint':
            'Enter it in the remark field of your bank transfer (附言 / 备注), not in a note on this page.',
        'pay.copyLabel': 'Copy {what}',
        'pay.copied': '{what} copied',

        'detail.sumCompletedMismatch':
            "{credited} was credited to your balance: not the order's amount (see below).",
        'detail.ordered': 'Order amount',
        'detail.arrived': 'Transfer received',
        'detail.credited': 'Credited to your balance',
        'mismatch.shortTitle': "Less arrived than the order's amount",
        'mismatch.overTitle': "More arrived than the order's amount",
        'mismatch.shortTodo':
            'Your transfer was {gap} short; what arrived was credited as it is. To add the rest, ' +
            'create a new order for it (at least {min}) and transfer to that: a second transfer ' +
            'to this order is not matched automatically. If you believe the full amount was sent, ' +
            'contact support with the order code {code} and your transfer receipt.',
        'mismatch.overTodo':
            'Your transfer was {gap} more than the order; everything that arrived was credited ' +
            'and you can use it for API usage. If you sent more than you meant to, contact ' +
            'support with the order code {code} to have the difference refunded.',
        'mismatch.support': 'Contact support about order {code}',
        'credit.done': 'Order {code}: {credited} was credited.',
        'credit.mismatch': 'Order {code}: {credited} was credited (the order was for {amount}).',

        'list.reasonNetwork': 'the server could not be reached',
        'list.reasonUnavailable': 'the service is temporarily unavailable',
        'list.reasonServer': 'an error on our side',
        'list.reasonOther': 'error {code}',
        'list.staleRows': 'What is shown was loaded at {time} and may be out of date.',
        'list.staleTag': 'may be out of date',
        'orders.loadFailed': 'Your orders could not be loaded ({reason}). Use Refresh to try again.',
        'flows.loadFailed': 'Your account flows could not be loaded ({reason}). Use Refresh to try again.',
        'common.retry': 'Try again',

        'status.all': 'All',
        'status.pending': 'Pending',
        'status.processing': 'Processing',
        'status.completed': 'Completed',
        'status.cancelled': 'Cancelled',
        'status.expired': 'Expired',

        'flows.title': 'Account flows',
        'flows.caption': 'Your account flows, newest first',
        'flows.typeFilter': 'Type',
        'flows.time': 'Time',
        'flows.type': 'Type',
        'flows.amount': 'Amount',
        'flows.balanceAfter': 'Balance after',
        'flows.reference': 'Reference',
        'flows.empty': 'No account flows yet.',
        'flows.pager': 'Account flow pages',

        'flowType.all': 'All',
        'flowType.recharge': 'Recharge',
        'flowType.consume': 'Consume',
        'flowType.refund': 'Refund',

        'cancel.title': 'Cancel this order?',
        'cancel.text':
            'Order {code} for {amount} will be cancelled. If you have already sent the transfer, ' +
            'keep the order instead.',
        'cancel.keep': 'Keep order',
        'cancel.confirm': 'Cancel order',

        'agreement.title': 'Recharge Agreement',
        'agreement.p1':
            'Funds you add are credited to your account balance after the platform verifies your ' +
            'bank transfer, and are used to pay for API usage.',
        'agreement.p2':
            "Enter the order's reference code in the remark field of your bank transfer (附言 / 备注). " +
            'A transfer that ' +
            'cannot be matched to an order is reviewed by our support team and may take longer ' +
            'to credit.',
        'agreement.p3':
            'A pending order can be cancelled until the transfer is matched. Refunds of unused ' +
            "balance follow the platform's refund policy.",

        'common.refresh': 'Refresh',
        'common.prev': 'Previous',
        'common.next': 'Next',
        'common.close': 'Close',
        'common.page': 'Page {page}',
        'common.loading': 'Loading…',
        'common.timeZone': 'Times in {zone}',

        'notes.title': 'Notes',
        'notes.days': 'Bank transfers may take 1–3 business days to process and verify.',
        'notes.name':
            'Make sure the remitter name matches the name used in your platform profile to speed ' +
            'up verification.',
        'notes.support':
            'If your top-up has not been credited after 3 business days, contact support with ' +
            'your transfer receipt.',
        'notes.minimum': 'The minimum top-up amount via bank transfer is {min}.',

        // API error codes (services/order-intake/README.md); the server stays the authority.
        'error.invalid_amount': 'Enter an amount such as 100 or 100.50 (at most two decimals).',
        'error.amount_below_minimum': 'The minimum top-up amount is {min}.',
        'error.amount_above_maximum': 'The amount is above the maximum for one top-up ({max}).',
        'error.invalid_channel': 'Bank Transfer is the only payment channel.',
        'error.remitter_name_required': 'Enter the remitter name.',
        'error.remitter_name_too_long': 'The remitter name can be at most {max} characters.',
        'error.remitter_bank_required': 'Enter the name of your bank.',
        'error.remitter_bank_too_long': 'The bank name can be at most {max} characters.',
        'error.remarks_too_long': 'The note can be at most {max} characters.',
        'error.invalid_characters': 'Remove line breaks and other control characters.',
        'error.agreement_required': 'You must agree to the Recharge Agreement.',
        'error.invalid_utf8': 'The text contains characters that cannot be used.',
        'error.idempotency_key_reused':
            'This submission conflicts with an earlier one. Check the form and submit again.',
        'error.unauthorized': 'This token was not accepted. Sign in again.',
        'error.token_expired': 'Your session has expired. Sign in again with a new token.',
        'error.not_found': 'This order was not found.',
        'error.unavailable':
            'The service is temporarily unavailable. Your input is kept: try again in a moment.',
        'error.internal':
            'Something went wrong on our side. Your input is kept: try again in a moment.',
        'error.network':
            'Could not reach the server. Your input is kept: submitting again will not create ' +
            'a second order.',
        'error.unknown': 'Something went wrong ({code}). Try again in a moment.',
    },

    zh: {
        'page.title': '充值',
        'page.skip': '跳到主要内容',
        'page.brand': '无量 AI 开放平台',
        'page.breadcrumb': '导航路径',
        'page.finance': '财务',
        'page.lead': '为账户充值，用于支付 API 调用费用。',
        'lang.label': '语言',

        'auth.title': '登录',
        'auth.tokenLabel': '账户令牌',
        'auth.tokenHelp': '粘贴为您的账户签发的访问令牌。令牌仅保存在当前浏览器标签页中。',
        'auth.tokenWhere': '令牌从哪里来：由管理员用以下命令为您的账户签发（本地环境中，deploy/dev.sh up 会打印该命令）：',
        'auth.submit': '登录',
        'auth.signOut': '退出登录',
        'auth.account': '账户 {account}',
        'auth.tokenRequired': '请输入账户令牌。',
        'auth.expired': '您的登录已过期，请使用新的令牌重新登录。',
        'auth.rejected': '令牌无效，请确认已粘贴完整的令牌。',
        'auth.signedOut': '您已退出登录。',

        'tabs.overview': '概览',
        'tabs.orders': '充值订单',
        'tabs.flows': '账户流水',

        'balance.title': '可用余额',
        'balance.refresh': '刷新',
        'balance.updated': '更新于 {time}',
        'balance.credited': '余额已更新：{amount}',
        'balance.stale': '余额刷新失败，正在重试。',

        'form.title': '充值',
        'form.amount': '充值金额（元）',
        'form.custom': '自定义',
        'form.customLabel': '自定义金额（元）',
        'form.customHelp': '{min} 至 {max}，最多两位小数。',
        'form.channel': '支付方式',
        'form.bankTransfer': '银行转账',
        'form.remitterName': '汇款人姓名',
        'form.remitterNameHelp': '转账人或转账单位的名称，须与银行显示的一致。',
        'form.remitterBank': '银行名称',
        'form.remitterBankHelp': '您用于转账的银行。',
        'form.remarks': '订单说明',
        'form.remarksHelp': '仅您和平台客服可见，银行不会收到。参考码请填写在银行转账的附言/备注栏中（在您的银行填写）。',
        'form.optional': '（选填）',
        'form.remarksCount': '{count} / {max} 字',
        'form.agreement': '我已阅读并同意《充值协议》。',
        'form.agreementRead': '查看《充值协议》',
        'form.submit': '提交',
        'form.submitting': '提交中…',
        'form.fixErrors': '请修改标出的字段。',

        'payee.title': '收款账户',
        'payee.bankName': '开户银行',
        'payee.accountName': '账户名称',
        'payee.accountNumber': '银行账号',
        'payee.help': '提交后，请在银行转账的附言/备注栏中填写订单的参考码。',
        'payee.afterSubmit': '提交后显示',

        'result.title': '订单已创建：请完成银行转账',
        'result.lead': '请在银行转账的附言/备注栏中填写以下参考码，以便我们将转账与订单匹配。',
        'result.reference': '参考码',
        'result.copy': '复制',
        'result.copied': '已复制',
        'result.copyFailed': '复制失败，请手动选中参考码复制。',
        'result.amount': '金额',
        'result.status': '状态',
        'result.created': '创建时间',
        'result.expires': '请在此时间前转账',
        'result.another': '再创建一笔订单',
        'result.instruction': '请向以下账户转账 {amount}（金额须一致），并在银行转账的附言/备注栏中填写参考码 {code}。',

        'orders.title': '充值订单',
        'orders.caption': '您的充值订单，按创建时间从新到旧排列',
        'orders.statusFilter': '状态',
        'orders.reference': '参考码',
        'orders.amount': '金额',
        'orders.status': '状态',
        'orders.remitter': '汇款人',
        'orders.created': '创建时间',
        'orders.expires': '转账截止',
        'orders.actions': '操作',
        'orders.cancel': '取消',
        'orders.cancelLabel': '取消订单 {code}',
        'orders.empty': '暂无订单。',
        'orders.pager': '订单分页',
        'orders.cancelled': '订单 {code} 已取消。',
        'orders.notPending': '订单 {code} 已无法取消：当前状态为“{status}”。',
        'orders.notPendingProcessing': '订单 {code} 已无法取消：您的转账已与该订单匹配，款项正在入账。',
        'orders.notPendingCompleted': '订单 {code} 已无法取消：您的转账已与该订单匹配，并已计入您的余额。',
        'orders.mismatch': '到账金额不一致',
        'orders.mismatchAmount': '到账金额不一致：{credited}',

        'orders.openLabel': '查看订单 {code}',
        'awaiting.title': '等待您转账的订单',
        'awaiting.item': '订单 {code}：{amount}',
        'awaiting.until': '转账截止',
        'awaiting.all': '全部订单',
        'orders.howToPay': '付款方式',
        'orders.howToPayLabel': '订单 {code} 的付款方式',

        'settings.failed': '充值选项加载失败（{reason}）。加载成功前无法提交订单。',

        'detail.back': '← 全部订单',
        'detail.title': '订单 {code}',
        'detail.createdTitle': '订单 {code} 已创建：请完成银行转账',
        'detail.notFound': '此账户下没有订单 {code}。',
        'detail.loadFailed': '订单加载失败（{reason}）。',
        'detail.payTitle': '付款方式',
        'detail.timeline': '订单进度',
        'detail.note': '订单说明（不会发给银行）',
        'detail.yourBank': '您的转账银行',
        'detail.sumPending': '等待您转账 {amount}。请按以下信息转账；本页面会一直保留，您可以随时回来查看。',
        'detail.sumProcessing': '您的转账已到账，正在计入余额。',
        'detail.sumCompleted': '{credited} 已计入您的余额，无需其他操作。',
        'detail.sumCancelled': '此订单已取消。请不要再为它转账；如需充值，请创建新订单。',
        'detail.sumExpired':
            '此订单在收到转账前已过期。请不要再为它转账；如需充值，请创建新订单。如果您已经转账，请携带订单号联系客服。',

        'step.created': '订单已创建',
        'step.awaiting': '等待转账',
        'step.received': '已收到转账',
        'step.credited': '已计入余额',
        'step.cancelled': '已取消',
        'step.expired': '已过期',
        'step.until': '截止',
        'stepState.done': '已完成',
        'stepState.current': '当前步骤',
        'stepState.todo': '未开始',
        'stepState.stopped': '在此结束',

        'pay.account_name': '收款户名',
        'pay.bank_name': '收款银行',
        'pay.account_number': '收款账号',
        'pay.amount': '转账金额（须一致）',
        'pay.code': '参考码',
        'pay.codeHint': '请填写在银行转账的附言/备注栏中，而不是本页面的订单说明里。',
        'pay.copyLabel': '复制{what}',
        'pay.copied': '已复制{what}',

        'detail.sumCompletedMismatch': '已计入您的余额 {credited}，与订单金额不同（见下方说明）。',
        'detail.ordered': '订单金额',
        'detail.arrived': '实际到账',
        'detail.credited': '已计入余额',
        'mismatch.shortTitle': '到账金额少于订单金额',
        'mismatch.overTitle': '到账金额多于订单金额',
        'mismatch.shortTodo':
            '您的转账比订单金额少 {gap}，实际到账的金额已按原样入账。如需补足，请为差额创建新订单（最低 {min}）' +
            '并按新订单转账：再次向本订单转账不会被自动匹配。如果您确认已转足额，请携带订单号 {code} 和转账凭证联系客服。',
        'mismatch.overTodo':
            '您的转账比订单金额多 {gap}，到账的全部金额已计入余额，可用于 API 调用。如果多转了，' +
            '请携带订单号 {code} 联系客服退还差额。',
        'mismatch.support': '就订单 {code} 联系客服',
        'credit.done': '订单 {code}：已入账 {credited}。',
        'credit.mismatch': '订单 {code}：已入账 {credited}（订单金额为 {amount}）。',

        'list.reasonNetwork': '无法连接服务器',
        'list.reasonUnavailable': '服务暂时不可用',
        'list.reasonServer': '系统出现问题',
        'list.reasonOther': '错误 {code}',
        'list.staleRows': '当前显示的是 {time} 加载的内容，可能已过时。',
        'list.staleTag': '可能已过时',
        'orders.loadFailed': '订单列表加载失败（{reason}），请点击“刷新”重试。',
        'flows.loadFailed': '账户流水加载失败（{reason}），请点击“刷新”重试。',
        'common.retry': '重试',

        'status.all': '全部',
        'status.pending': '待支付',
        'status.processing': '处理中',
        'status.completed': '已完成',
        'status.cancelled': '已取消',
        'status.expired': '已过期',

        'flows.title': '账户流水',
        'flows.caption': '您的账户流水，按时间从新到旧排列',
        'flows.typeFilter': '类型',
        'flows.time': '时间',
        'flows.type': '类型',
        'flows.amount': '金额',
        'flows.balanceAfter': '变动后余额',
        'flows.reference': '关联单号',
        'flows.empty': '暂无账户流水。',
        'flows.pager': '流水分页',

        'flowType.all': '全部',
        'flowType.recharge': '充值',
        'flowType.consume': '消费',
        'flowType.refund': '退款',

        'cancel.title': '取消此订单？',
        'cancel.text': '将取消金额为 {amount} 的订单 {code}。如果您已经完成转账，请保留该订单。',
        'cancel.keep': '保留订单',
        'cancel.confirm': '取消订单',

        'agreement.title': '充值协议',
        'agreement.p1': '平台核实您的银行转账后，充值金额将计入您的账户余额，用于支付 API 调用费用。',
        'agreement.p2':
            '请在银行转账的附言/备注栏中填写订单参考码。无法与订单匹配的转账将由客服人工审核，入账时间可能延长。',
        'agreement.p3': '转账匹配之前，待支付订单可以取消。未使用余额的退款按平台退款政策办理。',

        'common.refresh': '刷新',
        'common.prev': '上一页',
        'common.next': '下一页',
        'common.close': '关闭',
        'common.page': '第 {page} 页',
        'common.loading': '加载中…',
        'common.timeZone': '时区：{zone}',

        'notes.title': '说明',
        'notes.days': '银行转账的处理和核实可能需要 1–3 个工作日。',
        'notes.name': '请确保汇款人姓名与平台资料中的姓名一致，以加快核实。',
        'notes.support': '如果 3 个工作日后仍未到账，请携带转账凭证联系客服。',
        'notes.minimum': '银行转账的最低充值金额为 {min}。',

        'error.invalid_amount': '请输入正确的金额，例如 100 或 100.50（最多两位小数）。',
        'error.amount_below_minimum': '最低充值金额为 {min}。',
        'error.amount_above_maximum': '金额超过单笔充值上限（{max}）。',
        'error.invalid_channel': '目前仅支持银行转账。',
        'error.remitter_name_required': '请输入汇款人姓名。',
        'error.remitter_name_too_long': '汇款人姓名最多 {max} 个字。',
        'error.remitter_bank_required': '请输入银行名称。',
        'error.remitter_bank_too_long': '银行名称最多 {max} 个字。',
        'error.remarks_too_long': '订单说明最多 {max} 个字。',
        'error.invalid_characters': '请删除换行符等控制字符。',
        'error.agreement_required': '请阅读并同意《充值协议》。',
        'error.invalid_utf8': '文本包含无法使用的字符。',
        'error.idempotency_key_reused': '本次提交与之前的提交冲突，请检查表单后重新提交。',
        'error.unauthorized': '令牌无效，请重新登录。',
        'error.token_expired': '您的登录已过期，请使用新的令牌重新登录。',
        'error.not_found': '未找到该订单。',
        'error.unavailable': '服务暂时不可用。已填写的内容会保留，请稍后重试。',
        'error.internal': '系统出现问题。已填写的内容会保留，请稍后重试。',
        'error.network': '无法连接服务器。已填写的内容会保留，重新提交不会重复创建订单。',
        'error.unknown': '出现错误（{code}），请稍后再试。',
    },
};
