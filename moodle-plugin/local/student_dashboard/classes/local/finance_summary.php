<?php
// This file is part of Moodle - http://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.
//
// Moodle is distributed in the hope that it will be useful,
// but WITHOUT ANY WARRANTY; without even the implied warranty of
// MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
// GNU General Public License for more details.
//
// You should have received a copy of the GNU General Public License
// along with Moodle.  If not, see <http://www.gnu.org/licenses/>.

namespace local_student_dashboard\local;

/**
 * A student's finance summary, computed from their registrations and payments.
 *
 * Per currency: total fee, scholarship (amount and effective percentage), net amount, total paid,
 * total still due and remaining balance. Arithmetic is in integer cents. A payment takes the currency of
 * the registration it pays for; a payment without a known registration takes the student's currency when
 * the student has only one. This class has no Moodle dependency.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
final class finance_summary {

    /** @var string Payment status: paid. */
    public const STATUS_PAID = 'Paid';

    /** @var string Payment status: due. */
    public const STATUS_DUE = 'Due';

    /** @var string Payment status: overdue. */
    public const STATUS_OVERDUE = 'Overdue';

    /** @var array[] Registrations: zohoid, totalfee, scholarshippercent, currency. */
    private array $registrations;

    /** @var array[] Payments: registrationzohoid, amount, status. */
    private array $payments;

    /**
     * Create a summary.
     *
     * @param array[] $registrations Each with keys zohoid, totalfee, scholarshippercent (decimal strings) and currency.
     * @param array[] $payments Each with keys registrationzohoid, amount (decimal string) and status.
     */
    public function __construct(array $registrations, array $payments) {
        $this->registrations = array_values($registrations);
        $this->payments = array_values($payments);
    }

    /**
     * The currencies of the registrations, in first-seen order.
     *
     * @return string[]
     */
    public function currencies(): array {
        $currencies = [];
        foreach ($this->registrations as $registration) {
            $currencies[$registration['currency']] = true;
        }
        return array_keys($currencies);
    }

    /**
     * The currency a payment is in.
     *
     * @param array $payment A payment with key registrationzohoid.
     * @return string|null The currency code, or null when it cannot be told.
     */
    public function currency_of_payment(array $payment): ?string {
        $registrationid = (string) ($payment['registrationzohoid'] ?? '');
        if ($registrationid !== '') {
            foreach ($this->registrations as $registration) {
                if ((string) $registration['zohoid'] === $registrationid) {
                    return $registration['currency'];
                }
            }
        }
        $currencies = $this->currencies();
        return count($currencies) === 1 ? $currencies[0] : null;
    }

    /**
     * The summary per currency.
     *
     * @return array[] Each with currency and, in cents: totalfee, scholarship, net, paid, due, remaining;
     *     scholarshippercent in hundredths of a percent (the effective rate over all registrations).
     */
    public function totals(): array {
        $totals = [];
        foreach ($this->registrations as $registration) {
            $currency = $registration['currency'];
            if (!isset($totals[$currency])) {
                $totals[$currency] = ['currency' => $currency, 'totalfee' => 0, 'scholarship' => 0, 'paid' => 0, 'due' => 0];
            }
            $fee = money::parse(money::normalise($registration['totalfee']) ?? '') ?? 0;
            $percent = money::parse_percent(money::normalise($registration['scholarshippercent']) ?? '0') ?? 0;
            $totals[$currency]['totalfee'] += $fee;
            $totals[$currency]['scholarship'] += money::percentage_of($fee, $percent);
        }
        foreach ($this->payments as $payment) {
            $currency = $this->currency_of_payment($payment);
            if ($currency === null || !isset($totals[$currency])) {
                continue;
            }
            $amount = money::parse(money::normalise($payment['amount']) ?? '') ?? 0;
            if ($payment['status'] === self::STATUS_PAID) {
                $totals[$currency]['paid'] += $amount;
            } else if ($payment['status'] === self::STATUS_DUE || $payment['status'] === self::STATUS_OVERDUE) {
                $totals[$currency]['due'] += $amount;
            }
        }
        foreach ($totals as $currency => $total) {
            $total['net'] = $total['totalfee'] - $total['scholarship'];
            $total['remaining'] = $total['net'] - $total['paid'];
            $total['scholarshippercent'] = $total['totalfee'] > 0
                ? intdiv($total['scholarship'] * 10000 * 2 + $total['totalfee'], $total['totalfee'] * 2)
                : 0;
            $totals[$currency] = $total;
        }
        return array_values($totals);
    }
}
